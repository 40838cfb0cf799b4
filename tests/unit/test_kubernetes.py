"""deploy/kubernetes renders with `kubectl kustomize`, every object it renders passes the Kubernetes schemas (strict,
offline: kubernetes-validate), and the manifests agree with the server: each pod's config.toml and variables make a
config the server accepts, its ports and probes are the config's, it is given longer to stop than the server needs,
and the Services, the PodDisruptionBudgets and the HPA pick the pods they mean to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from gameserver.errors import ConfigError
from tests.kubernetes import POD_FIELDS, container, named, of_kind, pod_config, pod_labels, render, roles

OVERLAYS = ["all-in-one", "split"]
VERSIONS = ["1.30.0", "1.37.0"]  # the oldest with preStop's sleep action, and the newest kubernetes-validate knows
IMAGE = "localhost/gameserver:latest"  # what the container image build tags (podman kube play runs it as is)
SECRET = "a-secret-of-at-least-thirty-two-bytes-for-tokens"


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(request.param)


def selects(selector: dict[str, str], deployment: dict[str, Any]) -> bool:
    labels = pod_labels(deployment)
    return all(labels.get(key) == value for key, value in selector.items())


def deployments(rendered: tuple[str, list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    yield from of_kind(rendered[1], "Deployment")


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_passes_the_kubernetes_schemas(rendered: tuple[str, list[dict[str, Any]]], version: str) -> None:
    kinds = {doc["kind"] for doc in rendered[1]}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget"} <= kinds
    for doc in rendered[1]:
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any unknown or ill-typed field


def test_the_shipped_secrets_give_a_config_the_server_accepts(
    rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    overlay, docs = rendered
    for deployment in deployments(rendered):
        if overlay == "all-in-one":  # the embedded defaults: SQLite and the in-process store in the data volume
            config = pod_config(docs, deployment, tmp_path)
            assert (config.db.url, config.redis.url, config.auth.secret) == ("", "", "")
        else:  # separate pods need one token secret: the shipped placeholder is refused, a real one taken
            with pytest.raises(ConfigError, match="auth.secret"):
                pod_config(docs, deployment, tmp_path)
            config = pod_config(docs, deployment, tmp_path, GAMESERVER_AUTH__SECRET=SECRET)
            assert config.db.url.startswith("mysql+asyncmy://") and config.redis.url.startswith("redis://")
            assert config.auth.secret == SECRET
        assert config.server.host == "0.0.0.0"
        assert config.server.node_id == POD_FIELDS["metadata.name"]
        # podman 4.3's kube play knows no status.podIP; alone, the server finds the address it reaches Redis from
        assert config.server.advertise_host == ("" if overlay == "all-in-one" else POD_FIELDS["status.podIP"])
        volumes = {m["mountPath"] for m in container(deployment)["volumeMounts"]}
        assert config.server.data_dir in volumes


def test_each_deployment_runs_the_roles_its_labels_say(
    rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    overlay, docs = rendered
    everywhere: set[str] = set()
    for deployment in deployments(rendered):
        config = pod_config(docs, deployment, tmp_path, GAMESERVER_AUTH__SECRET=SECRET)
        assert set(config.server.roles) == roles(deployment)
        # a gate without a worker in its process hands its requests to the workers through a broker
        if "gate" in config.server.roles and "worker" not in config.server.roles:
            assert config.bus_backend in ("redis", "nats"), config.server.bus
        everywhere |= roles(deployment)
    assert everywhere == {"gate", "worker", "chat", "auth"}
    split = {"gameserver-gate", "gameserver-worker", "gameserver-chat", "gameserver-auth"}
    expected = {"all-in-one": {"gameserver"}, "split": split}
    assert {d["metadata"]["name"] for d in deployments(rendered)} == expected[overlay]


def test_ports_probes_and_the_time_to_stop_follow_the_config(
    rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    docs = rendered[1]
    for deployment in deployments(rendered):
        config = pod_config(docs, deployment, tmp_path, GAMESERVER_AUTH__SECRET=SECRET)
        spec = container(deployment)
        ports = {port["name"]: port["containerPort"] for port in spec["ports"]}
        wanted = {"gate-tcp": config.gate.tcp_port, "ws": config.gate.ws_port, "chat-tcp": config.chat.tcp_port}
        assert ports == {**wanted, "http": config.http.port}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert spec[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
        pod = deployment["spec"]["template"]["spec"]
        pre_stop = spec["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pre_stop > 0  # the endpoints and load balancers drop the pod before SIGTERM
        assert pod["terminationGracePeriodSeconds"] > pre_stop + config.server.shutdown_grace
        for kind in ("requests", "limits"):
            assert set(spec["resources"][kind]) == {"cpu", "memory"}
        assert spec["image"] == IMAGE


def test_services_and_budgets_pick_the_pods_they_mean(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    docs = rendered[1]
    pods = list(deployments(rendered))
    public = {"gameserver-gate-public": "gate", "gameserver-chat-public": "chat"}
    for service in of_kind(docs, "Service"):
        name, spec = service["metadata"]["name"], service["spec"]
        chosen = [d for d in pods if selects(spec["selector"], d)]
        if name in public:  # for players, by role: every pod that runs it, none that does not
            assert spec["type"] == "LoadBalancer" and spec["externalTrafficPolicy"] == "Local"
            assert chosen and chosen == [d for d in pods if public[name] in roles(d)]
        else:  # internal: its own Deployment's pods
            assert spec["type"] == "ClusterIP"
            assert [d["metadata"]["name"] for d in chosen] == [name]
        for port in spec["ports"]:
            assert all(port["targetPort"] in {p["name"] for p in container(d)["ports"]} for d in chosen)
    assert set(public) <= {s["metadata"]["name"] for s in of_kind(docs, "Service")}
    budgets = of_kind(docs, "PodDisruptionBudget")
    assert len(budgets) == len(pods)
    for budget in budgets:
        chosen = [d for d in pods if selects(budget["spec"]["selector"]["matchLabels"], d)]
        assert [d["metadata"]["name"] for d in chosen] == [budget["metadata"]["name"]]
        assert budget["spec"]["maxUnavailable"] == 1


def test_the_split_workers_scale_on_cpu() -> None:
    docs = render("split")
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    workers = named(docs, "Deployment", target["name"])
    assert target["kind"] == "Deployment" and "worker" in roles(workers)
    assert "replicas" not in workers["spec"]  # the HPA owns them: an apply would reset what it scaled to
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and "cpu" in container(workers)["resources"]["requests"]
    assert 1 < hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


def test_all_in_one_is_one_pod_podman_kube_play_can_run() -> None:
    """podman kube play runs the rendered file as it is: one pod template, volumes it can make on a single host."""
    docs = render("all-in-one")
    (deployment,) = of_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1  # its data lives in the pod until db.url and redis.url are set
    assert not of_kind(docs, "HorizontalPodAutoscaler")
    for volume in deployment["spec"]["template"]["spec"]["volumes"]:
        assert set(volume) - {"name"} <= {"emptyDir", "configMap", "secret", "hostPath"}
    spec = container(deployment)
    fields = {v["valueFrom"]["fieldRef"]["fieldPath"] for v in spec["env"] if "valueFrom" in v}
    assert fields <= {"metadata.name"}  # what podman 4.3 fills in (it refuses status.podIP)
    # podman 4.3 cannot read back a Secret it made from the file: the pod starts without it, on the embedded defaults
    assert [source["secretRef"].get("optional") for source in spec["envFrom"]] == [True]
