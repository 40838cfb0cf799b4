"""Resume across processes (docs/PROTOCOL.md, "Resume"; issue 16 item 1): apps in this loop share the real Redis
(a unique key prefix each test) and one SQLite database, as processes of one deployment. A session dropped on one
gate process resumes on another; a reply to a request cut off by the drop arrives there, once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gameserver.app import App
from gameserver.features.online import PresenceTracker
from tests.clients import TcpClient
from tests.conftest import delete_prefixed
from tests.fixtures.modules import PATH as FIXTURE_MODULES
from tests.server.resume_kit import Player, drop, state
from tests.server.social import connect, login
from tests.server.support import wait_until

pytestmark = pytest.mark.integration

AppFactory = Callable[..., Awaitable[App]]


@pytest.fixture
async def shared(redis_url: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    prefix = f"test:resume:{uuid.uuid4().hex}:"
    yield {
        "redis": {"url": redis_url, "prefix": prefix},
        "db": {"url": f"sqlite+aiosqlite:///{tmp_path / 'game.db'}"},
        "mail": {"root": str(tmp_path / "mail")},
        "auth": {"secret": "s" * 48, "single_session": True},
        "modules": {"paths": [FIXTURE_MODULES]},
    }
    await delete_prefixed(redis_url, prefix)


async def start(app_factory: AppFactory, shared: dict[str, Any], tmp_path: Path, node: str, *roles: str) -> App:
    server = {"node_id": node, "data_dir": str(tmp_path / node), "bus": "redis"}
    if roles:
        server["roles"] = list(roles)
    return await app_factory(server=server, **shared)


async def holding(client: TcpClient, name: str) -> None:
    """Return once a ``testkit.hold(name)`` runs."""
    while True:
        reply = await client.call("testkit.holding", {"name": name})
        assert reply["ok"], reply
        if reply["data"]:
            return


async def cut_off_and_resume_elsewhere(first: App, second: App, kept_by: App) -> Player:
    """A player on ``first`` sends ``testkit.hold``, drops, is pushed to, and resumes on ``second``; the held
    request's reply arrives there exactly once. ``kept_by``: the app that runs the handlers."""
    player = await Player.register(first)
    name = f"held-{uuid.uuid4().hex}"
    helper = await connect(first)
    assert isinstance(player.client, TcpClient) and isinstance(helper, TcpClient)
    player.client.send({"id": 500, "fn": "testkit.hold", "args": {"name": name}})
    await holding(helper, name)
    drop(player.client)
    r = state(first, player.token)
    assert r is not None
    await wait_until(lambda: not r.attached)
    kept_by.resources.bus.push(player.uid, "test.tick", {"n": 1})  # through Redis to the dropped session's process
    await wait_until(lambda: r.seq == player.received + 1)
    reply = await player.resume(second)
    assert reply["ok"] and reply["data"]["replayed"] == 1, reply
    assert player.numbered[-1]["event"] == "test.tick"
    assert reply["data"]["resume"]["token"] != r.key and state(second, player.token) is not None
    assert (await helper.call("testkit.release", {"name": name}))["ok"]
    held = await player.take()  # forwarded from the process that held the session
    assert held["id"] == 500 and held["data"] == name, held
    assert (await player.call("testkit.whoami"))["data"] == player.uid  # bound on the new process
    assert sum(m.get("id") == 500 for m in player.numbered) == 1
    return player


async def test_resume_on_another_process_after_a_drop_mid_request(
    app_factory: AppFactory, shared: dict[str, Any], tmp_path: Path
) -> None:
    a = await start(app_factory, shared, tmp_path, "a")
    b = await start(app_factory, shared, tmp_path, "b")
    presence = b.resources.extra["presence"]
    assert isinstance(presence, PresenceTracker)
    watcher = await Player.register(b)
    reply = await watcher.call("presence.subscribe", {"uids": [watcher.uid + 1]})  # the next player to register
    assert reply["ok"], reply
    player = await cut_off_and_resume_elsewhere(a, b, kept_by=a)
    await wait_until(lambda: not list(a.resources.sessions.of(player.uid)))  # released on a
    assert await presence.is_online(player.uid)
    released = a.resources.extra["presence"]
    assert isinstance(released, PresenceTracker)
    await released._changes.join()  # a's withdrawal is recorded (and announced, had it been the last claim)
    assert (await watcher.call("testkit.add", {"a": 1}))["ok"]  # the changes so far have arrived before this
    changes = [m["data"]["online"] for m in watcher.numbered if m.get("event") == "presence.changed"]
    assert changes == [True], changes  # online at the register; never offline through the drop and the move
    a.resources.bus.push(player.uid, "test.tick", {"n": 2})  # pushes find the player on b by uid
    assert (await player.take())["data"] == {"n": 2}
    # And back: a resume of the resumed session on the first process.
    drop(player.client)
    r = state(b, player.token)
    assert r is not None
    await wait_until(lambda: not r.attached)
    reply = await player.resume(a)
    assert reply["ok"] and reply["data"]["replayed"] == 0, reply
    assert (await player.call("testkit.whoami"))["data"] == player.uid


async def test_failures_cross_processes(app_factory: AppFactory, shared: dict[str, Any], tmp_path: Path) -> None:
    """The process that holds the session answers why it cannot be taken; nothing changes then."""
    a = await start(app_factory, shared, tmp_path, "a")
    b = await start(app_factory, shared, tmp_path, "b")
    player = await Player.register(a)
    drop(player.client)
    player.received += 5
    assert await player.failed_resume(b) == "invalid"
    player.received -= 5
    _, reply = await login(b, player.name)  # single session: the login on b replaces the session on a
    assert reply["ok"], reply
    await wait_until(lambda: state(a, player.token) is None)
    assert await player.failed_resume(b) == "replaced"


async def test_a_holder_that_stopped_is_lost(app_factory: AppFactory, shared: dict[str, Any], tmp_path: Path) -> None:
    a = await start(app_factory, shared, tmp_path, "a")
    b = await start(app_factory, shared, tmp_path, "b")
    player = await Player.register(a)
    drop(player.client)
    await a.stop()  # drops its dropped sessions; nobody answers for them any more
    assert await player.failed_resume(b) == "lost"


async def test_gates_apart_from_the_worker(app_factory: AppFactory, shared: dict[str, Any], tmp_path: Path) -> None:
    """The login runs on a remote worker, the resumable state lives in the gate processes."""
    worker = await start(app_factory, shared, tmp_path, "w", "worker", "auth")
    g1 = await start(app_factory, shared, tmp_path, "g1", "gate")
    g2 = await start(app_factory, shared, tmp_path, "g2", "gate")
    assert g1.dispatcher is None and worker.resumption is None
    await cut_off_and_resume_elsewhere(g1, g2, kept_by=worker)
