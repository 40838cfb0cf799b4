"""Presence survives a crash (issue 16): two `gameserver run` processes on the real Redis and one SQLite file; the
process holding a player is SIGKILLed, and a friend on the other process is told the player went offline (its claim
lapsed after ``presence.ttl`` and the survivor swept it): no ghost "online"."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.blackbox.support import run_command, start_logged, stop
from tests.clients import TcpClient
from tests.conftest import delete_prefixed

pytestmark = pytest.mark.blackbox

PASSWORD = "correct horse battery"
SWEPT_WITHIN = 20.0  # seconds to wait for the push: ttl (3 s) + a refresh (1 s), with room for a loaded machine


@pytest.fixture
async def settings(redis_url: str, tmp_path: Path) -> AsyncIterator[list[str]]:
    prefix = f"test:presence:{uuid.uuid4().hex}:"
    pairs = {
        "redis.url": redis_url,
        "redis.prefix": prefix,
        "db.url": f"sqlite+aiosqlite:///{tmp_path / 'game.db'}",
        "mail.root": str(tmp_path / "mail"),
        "auth.secret": "s" * 48,
        "presence.ttl": "3.0",
        "http.enabled": "false",
    }
    yield [arg for key, value in pairs.items() for arg in ("--set", f"{key}={value}")]
    await delete_prefixed(redis_url, prefix)


@pytest.fixture
def servers(settings: list[str], tmp_path: Path) -> Iterator[list[tuple[Any, dict[str, int]]]]:
    started = []
    try:
        for name in ("a", "b"):
            command = run_command(tmp_path / name, *settings)
            started.append(start_logged(command, tmp_path, tmp_path / f"{name}.log"))
        yield started
    finally:
        for process, _ in started:
            stop(process)


async def player(port: int, name: str, *, register: bool) -> tuple[TcpClient, int]:
    client = await TcpClient.open(port)
    reply = await client.call(f"auth.{'register' if register else 'login'}", {"username": name, "password": PASSWORD})
    assert reply["ok"], reply
    return client, reply["data"]["uid"]


async def next_push(client: TcpClient, timeout: float) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        message: dict[str, Any] = await client.recv()
    assert message.get("event") == "presence.changed", message
    data: dict[str, Any] = message["data"]
    return data


async def test_a_killed_holder_leaves_no_ghost(servers: list[tuple[Any, dict[str, int]]]) -> None:
    (killed, ports_a), (_, ports_b) = servers
    held, uid = await player(ports_a["gate-tcp"], "crashy", register=True)  # kept open until the kill
    watcher, _ = await player(ports_b["gate-tcp"], "friend", register=True)
    reply = await watcher.call("presence.subscribe", {"uids": [uid]})
    assert reply["data"]["players"][0]["online"] is True, reply
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    gone = await next_push(watcher, SWEPT_WITHIN)
    assert (gone["uid"], gone["online"]) == (uid, False)
    assert (await watcher.call("presence.get", {"uids": [uid]}))["data"]["players"][0]["online"] is False
    again, _ = await player(ports_b["gate-tcp"], "crashy", register=False)  # back, on the survivor
    back = await next_push(watcher, SWEPT_WITHIN)
    assert (back["uid"], back["online"]) == (uid, True)
