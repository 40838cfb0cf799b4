"""Two `gameserver run` processes on real Redis find each other in the node registry: `gameserver nodes` and
`GET /nodes` list both; a SIGKILLed one drops out after its TTL; a SIGTERMed one leaves as it stops
(docs/operations.md, "Node registry")."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.blackbox.support import GAMESERVER, clean_env, run_command
from tests.conftest import delete_prefixed, new_prefix
from tests.integration.private_services import free_port

pytestmark = [pytest.mark.blackbox, pytest.mark.integration]

ADMIN_KEY = "blackbox-nodes-admin-key"
DEADLINE = 30.0  # seconds before a wait fails; nothing asserts how long it took


@pytest.fixture
async def registry(redis_url: str) -> AsyncIterator[list[str]]:
    """The `--set` flags of a registry of this test's own on the shared Redis: fast beats, a short TTL."""
    prefix = new_prefix()
    yield [
        *("--set", f"redis.url={redis_url}"),
        *("--set", f"redis.prefix={prefix}"),
        *("--set", "nodes.heartbeat=0.2"),
        *("--set", "nodes.ttl=1.0"),
    ]
    await delete_prefixed(redis_url, prefix)


class Server:
    def __init__(self, tmp: Path, node: str, registry: list[str]) -> None:
        self.node = node
        self.http = free_port()
        self.log = tmp / f"{node}.log"
        command = run_command(tmp / node, *registry, "--set", f"server.node_id={node}", http=self.http)
        env = {**clean_env(), "GAMESERVER_NODES__ADMIN_KEY": ADMIN_KEY}
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(command, cwd=tmp, stdout=out, stderr=subprocess.STDOUT, env=env)

    def get(self, path: str, **headers: str) -> tuple[int, Any] | None:
        request = urllib.request.Request(f"http://127.0.0.1:{self.http}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
        except OSError:
            return None  # not listening (yet, or any more)

    def nodes(self) -> list[str]:
        answer = self.get("/nodes", Authorization=f"Bearer {ADMIN_KEY}")
        assert answer is not None and answer[0] == 200, answer
        return [node["node"] for node in answer[1]["nodes"]]

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + DEADLINE
        while (answer := self.get("/healthz")) is None or answer[0] != 200:
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"{self.node} not healthy: {answer}"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def servers(tmp_path: Path, registry: list[str]) -> Iterator[list[Server]]:
    started = [Server(tmp_path, "bb-a", registry), Server(tmp_path, "bb-b", registry)]
    try:
        for server in started:
            server.wait_healthy()
        yield started
    finally:
        for server in started:
            server.stop()


def nodes_command(registry: list[str], *argv: str) -> subprocess.CompletedProcess[str]:
    command = [*GAMESERVER, "nodes", *registry, *argv]
    return subprocess.run(command, env=clean_env(), capture_output=True, text=True, timeout=60)


def listed(registry: list[str]) -> dict[str, Any]:
    result = nodes_command(registry, "--json")
    assert result.returncode == 0, result.stderr
    return {node["node"]: node for node in json.loads(result.stdout)["nodes"]}


async def until(condition: Any) -> None:
    async with asyncio.timeout(DEADLINE):
        while not condition():
            await asyncio.sleep(0.05)


async def test_two_servers_see_each_other_and_a_killed_one_drops_out(
    servers: list[Server], registry: list[str]
) -> None:
    a, b = servers
    await until(lambda: a.nodes() == b.nodes() == ["bb-a", "bb-b"])  # /healthz answers before the first heartbeat
    entries = listed(registry)
    assert sorted(entries) == ["bb-a", "bb-b"]
    assert entries["bb-a"]["addresses"]["http"] == f"127.0.0.1:{a.http}"
    assert entries["bb-b"]["addresses"]["http"] == f"127.0.0.1:{b.http}"
    assert entries["bb-a"]["addresses"]["ws"] != entries["bb-b"]["addresses"]["ws"]
    table = nodes_command(registry, "--role", "gate")
    assert table.returncode == 0, table.stderr
    assert [line.split()[0] for line in table.stdout.splitlines()] == ["NODE", "bb-a", "bb-b"]

    b.process.send_signal(signal.SIGKILL)  # no goodbye: the entry must expire by itself
    b.process.wait()
    await until(lambda: a.nodes() == ["bb-a"])
    assert sorted(listed(registry)) == ["bb-a"]

    a.process.send_signal(signal.SIGTERM)  # a graceful stop leaves before it exits
    assert a.process.wait(timeout=DEADLINE) == 0, a.log.read_text()
    assert listed(registry) == {}
    assert "no live nodes under prefix" in nodes_command(registry).stdout
