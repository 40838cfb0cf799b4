"""The pods of deploy/kubernetes run for real, as `gameserver run` processes here: each rendered Deployment's
arguments, the config.toml its ConfigMap mounts and its variables (the Secret's, with the test's own backends), with
only what a machine shared with other tests needs changed: 127.0.0.1, free ports, a data folder of its own.

all-in-one serves on the embedded defaults. split's four pods, on the real MariaDB and Redis, make one game: a
player registers through the gate pod (its request run by the worker pod, through Redis Streams), logs in over HTTP
on the auth pod, the token signed there binds a gate connection, and a nonce from the auth pod lets them into the
chat pod.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.blackbox.support import GAMESERVER, clean_env, start_logged, stop
from tests.clients import ChatClient, TcpClient, WsClient
from tests.conftest import delete_prefixed, new_prefix
from tests.kubernetes import of_kind, pod_args, pod_env, render, roles

pytestmark = pytest.mark.blackbox

SECRET = "a-secret-of-at-least-thirty-two-bytes-for-tokens"
PASSWORD = "correct horse battery"
HERE = {  # what differs from a pod on a machine shared with other tests: the address, the ports
    "GAMESERVER_SERVER__HOST": "127.0.0.1",
    "GAMESERVER_SERVER__ADVERTISE_HOST": "127.0.0.1",
    "GAMESERVER_GATE__TCP_PORT": "0",
    "GAMESERVER_GATE__WS_PORT": "0",
    "GAMESERVER_CHAT__TCP_PORT": "0",
    "GAMESERVER_HTTP__PORT": "0",
    "GAMESERVER_AUTH__HASH_MEMORY_KIB": "8",  # argon2id at its cheapest: logins are not what is tested
    "GAMESERVER_AUTH__HASH_TIME_COST": "1",
}


@dataclass
class Pod:
    name: str
    roles: set[str]
    process: subprocess.Popen[bytes]
    ports: dict[str, int]
    log: Path


@pytest.fixture
def pods() -> Iterator[list[Pod]]:
    """The pods a test starts; each is stopped with SIGTERM at the end and must exit 0."""
    started: list[Pod] = []
    yield started
    codes: dict[str, int | str] = {}
    for pod in started:
        try:
            codes[pod.name] = stop(pod.process)
        except subprocess.TimeoutExpired:
            codes[pod.name] = "still running after SIGTERM (killed)"
    logs = "\n".join(f"--- {pod.name}\n{pod.log.read_text(errors='replace')}" for pod in started)
    assert codes == {pod.name: 0 for pod in started}, logs


def start_pods(docs: list[dict[str, Any]], tmp: Path, pods: list[Pod], **secrets: str) -> dict[str, Pod]:
    """Every Deployment's pod, started side by side; by Deployment name without ``gameserver-``."""

    def start(deployment: dict[str, Any]) -> Pod:
        name = deployment["metadata"]["name"]
        root = tmp / name
        (root / "data").mkdir(parents=True)
        env = {**clean_env(), **pod_env(docs, deployment, secrets), **HERE}
        env["GAMESERVER_SERVER__NODE_ID"] = name  # one name per process: the test's pods share a Redis prefix
        env["GAMESERVER_SERVER__DATA_DIR"] = str(root / "data")  # the pod's data volume
        log = root / "server.log"
        process, ports = start_logged([*GAMESERVER, *pod_args(docs, deployment, root)], root, log, env)
        pod = Pod(name, roles(deployment), process, ports, log)
        pods.append(pod)
        return pod

    # Side by side: on an empty MariaDB database each pod migrates the schema as it starts (db.migrate = "upgrade" in
    # the ConfigMap), taking turns on the database's lock.
    with ThreadPoolExecutor() as pool:  # each waits for its ready line: the start-ups overlap
        started = list(pool.map(start, of_kind(docs, "Deployment")))
    return {pod.name.removeprefix("gameserver-"): pod for pod in started}


async def health(session: aiohttp.ClientSession, pod: Pod) -> dict[str, Any]:
    async with session.get(f"http://127.0.0.1:{pod.ports['http']}/healthz") as response:
        assert response.status == 200
        answer: dict[str, Any] = await response.json()
        return answer


async def test_all_in_one_serves_on_the_embedded_defaults(tmp_path: Path, pods: list[Pod]) -> None:
    (pod,) = start_pods(render("all-in-one"), tmp_path, pods).values()
    async with aiohttp.ClientSession() as session:
        assert set((await health(session, pod))["roles"]) == pod.roles == {"gate", "chat", "auth", "worker"}
    assert (tmp_path / "gameserver" / "data" / "game.db").exists()  # SQLite in the data volume
    tcp = await TcpClient.open(pod.ports["gate-tcp"])
    ws = await WsClient.open(pod.ports["ws"])
    for client in (tcp, ws):
        assert await client.call("sys.echo", {"pod": 1}) == {"id": 1, "ok": True, "data": {"pod": 1}}
        await client.close()


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A Redis key prefix of the test's own, its keys deleted at the end (after the pods stopped: ask for it first)."""
    prefix = new_prefix()
    yield prefix
    await delete_prefixed(redis_url, prefix)


@pytest.mark.integration
async def test_split_pods_make_one_game(
    tmp_path: Path, mariadb_database: str, redis_url: str, prefix: str, pods: list[Pod]
) -> None:  # fixtures end in reverse order: the pods stop before their keys and their database go
    docs = render("split")
    secrets = {
        "GAMESERVER_AUTH__SECRET": SECRET,
        "GAMESERVER_DB__URL": mariadb_database,
        "GAMESERVER_REDIS__URL": redis_url,
        "GAMESERVER_REDIS__PREFIX": prefix,
    }
    pod = start_pods(docs, tmp_path, pods, **secrets)
    assert set(pod) == {"gate", "worker", "chat", "auth"}
    async with aiohttp.ClientSession() as session:
        for each in pods:
            assert set((await health(session, each))["roles"]) == each.roles
        gate = await WsClient.open(pod["gate"].ports["ws"])
        credentials = {"username": "kai", "password": PASSWORD}
        # the gate pod hands auth.register to the worker pod through Redis Streams
        assert (await gate.call("auth.register", credentials))["ok"] is True
        await gate.close()
        auth = f"http://127.0.0.1:{pod['auth'].ports['http']}/auth"
        async with session.post(f"{auth}/login", json=credentials) as response:  # the account, from MariaDB
            assert response.status == 200
            token = (await response.json())["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        async with session.post(f"{auth}/nonce", headers=bearer) as response:
            assert response.status == 200
            nonce = (await response.json())["nonce"]
    gate = await WsClient.open(pod["gate"].ports["ws"])
    bound = await gate.call("session.bind", {"token": token})  # signed by the auth pod: one auth.secret
    assert bound["ok"] is True, bound
    chat = await ChatClient.websocket(pod["chat"].ports["ws"])
    assert (await chat.login(nonce))["name"] == "kai"  # issued by the auth pod, redeemed through Redis
    await chat.close()
    await gate.close()
