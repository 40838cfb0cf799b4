"""deploy/kubernetes as tests read it: the overlays rendered by `kubectl kustomize`, and what a pod of a rendered
Deployment gets (its variables, its config)."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gameserver.config import Config, load
from tests.conftest import IN_CI

KUBERNETES = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"
ROLE_LABEL = "gameserver/"  # gameserver/gate: "true", ...: the roles a pod runs, for the LoadBalancer Services
POD_FIELDS = {"metadata.name": "gameserver-7d9f-abcde", "status.podIP": "10.1.2.3"}
"""What Kubernetes fills in for a pod's ``fieldRef`` variables."""
RENDERED: dict[str, list[dict[str, Any]]] = {}


def require_kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        return kubectl
    message = "kubectl is not installed (apt-get install kubectl; scripts/services does in CI)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def render(overlay: str) -> list[dict[str, Any]]:
    """What `kubectl kustomize deploy/kubernetes/overlays/<overlay>` prints, parsed (once per run)."""
    if overlay not in RENDERED:
        command = [require_kubectl(), "kustomize", str(KUBERNETES / "overlays" / overlay)]
        out = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        RENDERED[overlay] = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    return RENDERED[overlay]


def roles(deployment: dict[str, Any]) -> set[str]:
    return {key.removeprefix(ROLE_LABEL) for key, value in pod_labels(deployment).items() if key.startswith(ROLE_LABEL)}


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    return doc


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


def pod_env(docs: list[dict[str, Any]], deployment: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
    """The variables the pod's container gets: the Secret's (``secrets`` laid over its data), then its own."""
    spec = container(deployment)
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        secret = named(docs, "Secret", source["secretRef"]["name"])
        env.update({key: base64.b64decode(value).decode() for key, value in secret["data"].items()})
    env.update(secrets)
    for variable in spec.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            env[variable["name"]] = POD_FIELDS[variable["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def pod_args(docs: list[dict[str, Any]], deployment: dict[str, Any], tmp: Path) -> list[str]:
    """The container's arguments, with the config file it mounts from the ConfigMap written into ``tmp`` instead."""
    spec = container(deployment)
    args = list(spec["args"])
    assert args[:2] == ["run", "--config"]
    path = Path(args[2])
    (volume,) = [m for m in spec["volumeMounts"] if Path(m["mountPath"]) == path.parent]
    (config_map,) = [
        named(docs, "ConfigMap", v["configMap"]["name"])
        for v in deployment["spec"]["template"]["spec"]["volumes"]
        if v["name"] == volume["name"]
    ]
    local = tmp / path.name
    local.write_text(config_map["data"][path.name])
    args[2] = str(local)
    return args


def pod_config(docs: list[dict[str, Any]], deployment: dict[str, Any], tmp: Path, **secrets: str) -> Config:
    """What `gameserver run --config ...` builds in the pod: the mounted ConfigMap's file and the pod's variables."""
    return load(pod_args(docs, deployment, tmp)[2], env=pod_env(docs, deployment, secrets))
