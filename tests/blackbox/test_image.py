"""The container image from the shipped Dockerfile, built with podman on a Debian bookworm base made here with
debootstrap (no registry is reachable): one container with every role answers /healthz and ``sys.echo``, a second
one with the worker role alone joins through the node registry on the real Redis, the image's HEALTHCHECK passes,
and ``podman stop`` ends the server with exit 0 within the grace. Then the all-in-one Kubernetes overlay
(deploy/kubernetes) runs on the image with `podman kube play`.

Slow steps are cached outside the checkout: the debootstrap root filesystem as a tarball under
/var/cache/gameserver-ci (keyed by suite), and the image's layers in podman's own storage, so that a second run on
one machine rebuilds only what changed; a fresh machine builds everything (minutes: debootstrap, apt, pip,
PyInstaller).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.blackbox.conftest import CACHE, PROJECT
from tests.blackbox.support import clean_env
from tests.clients import TcpClient, WsClient
from tests.conftest import IN_CI, delete_prefixed, new_prefix
from tests.integration.private_services import free_port
from tests.kubernetes import named, of_kind, render

pytestmark = [pytest.mark.blackbox, pytest.mark.timeout(1800)]  # building the image on a fresh machine: minutes

SUITE = "bookworm"
BASE = f"localhost/gameserver-ci-base:{SUITE}-slim"
# what a slim base leaves out (apt's lists and package cache, docs, manuals, translations): ~80 MB instead of ~200
SLIM = ["./var/cache/apt/*", "./var/lib/apt/lists/*", "./usr/share/doc/*", "./usr/share/man/*", "./usr/share/locale/*"]
IMAGE = "localhost/gameserver-ci:test"
# This machine's podman: crun fails on its cgroups, and the open-files hard limit is 20000 (podman's default asks
# for more). A containers.conf of the test's own says so for every podman call, builds included.
CONTAINERS_CONF = (
    '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=1024:1024"]\n[engine]\nruntime = "runc"\n'
)
GRACE = 2.0  # server.shutdown_grace in the containers; podman stop waits STOP_TIME before SIGKILL
STOP_TIME = 15
DEADLINE = 60.0  # seconds a container may take to answer /healthz; nothing asserts how long it took


def require_tools() -> None:
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed (apt-get install podman buildah runc debootstrap; "
    message += "scripts/services does in CI)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


class Podman:
    def __init__(self, conf: Path) -> None:
        self.env = {**clean_env(), "CONTAINERS_CONF": str(conf)}

    def __call__(self, *argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["podman", *argv], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check:
            assert result.returncode == 0, f"podman {' '.join(argv)}:\n{result.stdout}\n{result.stderr}"
        return result

    def exists(self, image: str) -> bool:
        return self("image", "exists", image, check=False).returncode == 0


def base_tarball() -> Path:
    """A minimal bookworm root filesystem, made once per machine (debootstrap takes a few minutes)."""
    tarball = CACHE / f"debootstrap-{SUITE}-slim.tar"
    if tarball.is_file():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    root = CACHE / f"debootstrap-{SUITE}.{os.getpid()}"
    try:
        made = subprocess.run(
            ["debootstrap", "--variant=minbase", SUITE, str(root), "http://deb.debian.org/debian"],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert made.returncode == 0, f"debootstrap failed:\n{made.stdout[-3000:]}\n{made.stderr[-3000:]}"
        partial = tarball.with_suffix(f".{os.getpid()}")
        excludes = [f"--exclude={pattern}" for pattern in SLIM]
        subprocess.run(["tar", "-C", str(root), *excludes, "-cf", str(partial), "."], check=True)
        os.replace(partial, tarball)  # whole or absent
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return tarball


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    require_tools()
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return Podman(conf)


@pytest.fixture(scope="session")
def image(podman: Podman) -> str:
    """The image scripts/build-image makes from the Dockerfile, on the debootstrap base."""
    if not podman.exists(BASE):
        podman("import", str(base_tarball()), BASE, timeout=600)
    built = subprocess.run(
        [str(PROJECT / "scripts" / "build-image"), "--base", BASE, "--tag", IMAGE],
        env=podman.env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert built.returncode == 0, f"scripts/build-image failed:\n{built.stderr[-5000:]}"
    print(built.stderr.splitlines()[-1])  # its time and size, in the test log
    return IMAGE


def container_config(ports: dict[str, int], prefix: str, redis_url: str) -> str:
    """The config.toml mounted into a container: its own ports on the host's network, the shared Redis."""
    return (
        f"[server]\nshutdown_grace = {GRACE}\n"
        f"[gate]\ntcp_port = {ports['gate']}\nws_port = {ports['ws']}\n"
        f"[chat]\ntcp_port = {ports['chat']}\n"
        f"[http]\nport = {ports['http']}\n"
        f'[redis]\nurl = "{redis_url}"\nprefix = "{prefix}"\n'
        "[nodes]\nheartbeat = 0.5\nttl = 2.0\n"
        "[auth]\nhash_memory_kib = 8\nhash_time_cost = 1\n"
    )


def healthz(port: int) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return json.load(response)
    except OSError:
        return None


class Container:
    def __init__(self, podman: Podman, image: str, tmp: Path, name: str, redis_url: str, prefix: str, *argv: str):
        self.podman, self.name = podman, f"gstest-{name}-{uuid.uuid4().hex[:8]}"
        self.ports = {listener: free_port() for listener in ("gate", "ws", "chat", "http")}
        self.http = self.ports["http"]
        self.config = tmp / f"{name}.toml"
        self.config.write_text(container_config(self.ports, prefix, redis_url))
        self.volume = f"{self.name}-var"
        podman(
            *("run", "--detach", "--name", self.name, "--network", "host"),
            *("--volume", f"{self.config}:/srv/gameserver/config.toml:ro"),
            *("--volume", f"{self.volume}:/var/lib/gameserver"),
            *("--env", f"GAMESERVER_SERVER__NODE_ID={self.name}", "--env", f"GAMESERVER_HTTP__PORT={self.http}"),
            image,
            *argv,
        )

    def wait_healthy(self) -> dict[str, Any]:
        deadline = time.monotonic() + DEADLINE
        while (body := healthz(self.http)) is None or body["status"] != "ok":
            state = self.podman("inspect", "--format", "{{.State.Status}}", self.name).stdout.strip()
            assert state == "running" and time.monotonic() < deadline, f"{self.name} {state}:\n{self.logs()}"
            time.sleep(0.1)
        return dict(body)

    def logs(self) -> str:
        result = self.podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def stop(self) -> int:
        self.podman("stop", "--time", str(STOP_TIME), self.name, timeout=STOP_TIME + 30)
        return int(self.podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout)

    def remove(self) -> None:
        self.podman("rm", "--force", self.name, check=False)
        self.podman("volume", "rm", "--force", self.volume, check=False)


@pytest.fixture
def containers(podman: Podman) -> Iterator[list[Container]]:
    started: list[Container] = []
    yield started
    for container in started:
        container.remove()


async def test_the_image_serves_joins_the_registry_and_stops_gracefully(
    podman: Podman, image: str, tmp_path: Path, redis_url: str, containers: list[Container]
) -> None:
    inspect = json.loads(podman("image", "inspect", image).stdout)[0]
    assert inspect["Config"]["User"] == "gameserver"  # not root
    assert inspect["Healthcheck"]["Test"][:2] == ["CMD", "bash"]  # kept: a Docker-format image
    assert "/var/lib/gameserver" in inspect["Config"]["Volumes"]

    prefix = new_prefix()
    try:
        every = Container(podman, image, tmp_path, "all", redis_url, prefix)
        containers.append(every)
        body = every.wait_healthy()
        assert (body["node"], sorted(body["roles"])) == (every.name, ["auth", "chat", "gate", "worker"])
        assert podman("healthcheck", "run", every.name, check=False).returncode == 0, every.logs()  # HEALTHCHECK
        tcp = await TcpClient.open(every.ports["gate"])
        assert await tcp.call("sys.echo", {"over": "tcp"}) == {"id": 1, "ok": True, "data": {"over": "tcp"}}
        await tcp.close()
        websocket = await WsClient.open(every.ports["ws"])
        assert (await websocket.call("sys.echo", {"over": "ws"}))["data"] == {"over": "ws"}
        await websocket.close()
        uid = podman("exec", every.name, "id", "-u").stdout.strip()
        assert uid != "0"
        assert (
            podman("exec", every.name, "test", "-f", "/var/lib/gameserver/game.db", check=False).returncode == 0
        )  # var/

        worker = Container(podman, image, tmp_path, "worker", redis_url, prefix, "run", "--roles", "worker")
        containers.append(worker)
        assert worker.wait_healthy()["roles"] == ["worker"]
        listed = podman("exec", every.name, "gameserver", "nodes", "--json").stdout
        nodes = {node["node"]: node["roles"] for node in json.loads(listed)["nodes"]}
        assert nodes == {every.name: ["gate", "chat", "auth", "worker"], worker.name: ["worker"]}

        for container in (worker, every):
            code = container.stop()  # SIGTERM to PID 1, passed on to the server; SIGKILL after STOP_TIME
            assert code == 0, container.logs()
            assert "stopping (grace" in container.logs()
    finally:
        await delete_prefixed(redis_url, prefix)


def test_the_all_in_one_overlay_runs_as_a_pod(podman: Podman, image: str, tmp_path: Path) -> None:
    """`podman kube play` of what `kubectl kustomize deploy/kubernetes/overlays/all-in-one` renders, on the image
    built here: the pod, in its own network namespace, answers /healthz on its loopback (asked from inside)."""
    docs = copy.deepcopy(render("all-in-one"))  # render() keeps what it parsed for the other tests
    deployment = named(docs, "Deployment", "gameserver")
    name = f"gstest-{uuid.uuid4().hex[:8]}"  # its own pod name: another run may play the overlay at the same time
    deployment["metadata"] = {**deployment["metadata"], "name": name}
    (spec,) = deployment["spec"]["template"]["spec"]["containers"]
    spec["image"] = image  # the overlay names localhost/gameserver:latest
    manifest = tmp_path / "all-in-one.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    try:
        podman("kube", "play", str(manifest), timeout=300)
        pod = f"{name}-pod-0-gameserver"
        request = 'exec 3<>/dev/tcp/127.0.0.1/8000 && printf "GET /healthz HTTP/1.0\\r\\n\\r\\n" >&3 && cat <&3'
        deadline = time.monotonic() + DEADLINE
        while (answer := podman("exec", pod, "bash", "-c", request, check=False)).returncode != 0:
            state = podman("inspect", "--format", "{{.State.Status}}", pod, check=False).stdout.strip()
            assert state == "running" and time.monotonic() < deadline, f"{pod} {state}: {answer.stderr}"
            time.sleep(0.2)
        head, _, body = answer.stdout.partition("\n\n")  # text mode reads CRLF as LF
        assert head.startswith("HTTP/1.0 200 "), answer.stdout
        assert json.loads(body)["roles"] == ["gate", "chat", "auth", "worker"]
    finally:
        podman("kube", "down", str(manifest), check=False)
        for config_map in of_kind(docs, "ConfigMap"):  # kube down leaves the volume kube play made of it
            podman("volume", "rm", config_map["metadata"]["name"], check=False)  # unless another run still uses it
