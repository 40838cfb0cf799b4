"""Resume through real sockets and real processes (issue 16 item 1): two `gameserver run` on the real Redis and one
SQLite file. A client on the first drops (a TCP reset) while a request runs and while mail arrives for it, resumes
on the second, and counts every reply and push: each arrives exactly once, numbered without a gap."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.blackbox.support import run_command, start_logged, stop
from tests.clients import TcpClient
from tests.conftest import delete_prefixed
from tests.fixtures.modules import PATH as FIXTURE_MODULES
from tests.server.resume_kit import Player, drop
from tests.server.social import PASSWORD

pytestmark = pytest.mark.blackbox

Ports = dict[str, int]


@pytest.fixture
async def settings(redis_url: str, tmp_path: Path) -> AsyncIterator[list[str]]:
    prefix = f"test:resume:{uuid.uuid4().hex}:"
    pairs = {
        "redis.url": redis_url,
        "redis.prefix": prefix,
        "db.url": f"sqlite+aiosqlite:///{tmp_path / 'game.db'}",
        "mail.root": str(tmp_path / "mail"),
        "auth.secret": "s" * 48,
        "http.enabled": "false",
        "modules.paths": str(FIXTURE_MODULES),
    }
    yield [arg for key, value in pairs.items() for arg in ("--set", f"{key}={value}")]
    await delete_prefixed(redis_url, prefix)


@pytest.fixture
def servers(settings: list[str], tmp_path: Path) -> Iterator[tuple[Ports, Ports]]:
    started = []
    try:
        for name in ("a", "b"):
            command = run_command(tmp_path / name, *settings, "--set", f"server.node_id={name}")
            started.append(start_logged(command, tmp_path, tmp_path / f"{name}.log"))
        yield started[0][1], started[1][1]
    finally:
        for process, _ in started:
            stop(process)


async def call(client: TcpClient, fn: str, args: dict[str, Any]) -> Any:
    reply = await client.call(fn, args)
    assert reply["ok"], reply
    return reply["data"]


async def test_drop_and_resume_on_the_other_process(servers: tuple[Ports, Ports]) -> None:
    a, b = servers
    player = await Player.register(a)
    friend = await TcpClient.open(b["gate-tcp"])
    await call(friend, "auth.register", {"username": f"friend-{uuid.uuid4().hex[:8]}", "password": PASSWORD})
    helper = await TcpClient.open(a["gate-tcp"])
    assert isinstance(player.client, TcpClient)

    sums = [(await player.call("testkit.add", {"a": n, "b": 1}))["data"] for n in range(10)]
    assert sums == list(range(1, 11))
    name = f"held-{uuid.uuid4().hex}"
    player.client.send({"id": 1000, "fn": "testkit.hold", "args": {"name": name}})
    while not await call(helper, "testkit.holding", {"name": name}):
        pass
    drop(player.client)
    for n in range(3):  # published before the resume asks a for the session: a has them when it hands it over
        await call(friend, "mail.send", {"to": player.uid, "subject": f"away {n}", "body": "hi"})

    reply = await player.resume(b)
    assert reply["ok"] and reply["data"] == {**reply["data"], "uid": player.uid, "replayed": 3}, reply
    assert [m["data"]["subject"] for m in player.numbered[-3:]] == ["away 0", "away 1", "away 2"]
    await call(helper, "testkit.release", {"name": name})
    held = await player.take()  # the reply of the request cut off on a, on the new connection to b
    assert held["id"] == 1000 and held["data"] == name, held

    await call(friend, "mail.send", {"to": player.uid, "subject": "back", "body": "hi"})
    back = await player.take()
    assert back["event"] == "mail.new" and back["data"]["subject"] == "back", back
    sums = [(await player.call("testkit.add", {"a": n, "b": 100}))["data"] for n in range(10)]
    assert sums == list(range(100, 110))

    # Counted: the register reply, 10 sums, 3 mails, the held reply, 1 mail, 10 sums; each once, seq 1..26.
    assert [m["seq"] for m in player.numbered] == list(range(1, 27))
    assert sum(m.get("id") == 1000 for m in player.numbered) == 1
    assert sum(m.get("event") == "mail.new" for m in player.numbered) == 4

    # Dropped again, resumed on the same process over WebSocket with JSON: the kept messages are re-encoded.
    drop(player.client)
    await call(friend, "mail.send", {"to": player.uid, "subject": "json", "body": "hi"})
    reply = await player.resume(b, "ws", binary=False)
    assert reply["ok"] and reply["data"]["replayed"] == 1, reply  # kept until acknowledged, wherever it was written
    assert player.numbered[-1]["data"]["subject"] == "json"
    assert (await player.call("testkit.whoami"))["data"] == player.uid
    unanswered = [m for m in player.numbered if "id" in m and not m["ok"]]
    assert not unanswered, unanswered
    assert [m["seq"] for m in player.numbered] == list(range(1, 29))
    await friend.close()
    await helper.close()
