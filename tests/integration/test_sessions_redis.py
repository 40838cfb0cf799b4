"""Sessions and social across processes: two apps in this loop share the real Redis (a unique key prefix each test)
and one SQLite database, as two processes of one deployment (``server.bus`` = redis). Single session, presence,
kept pushes, mutes, bans and chat history must behave as in one process (tests/server/)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gameserver.app import App
from gameserver.features.chatedge import Chat
from gameserver.features.notifications import Notifications
from gameserver.features.online import PresenceTracker
from tests.conftest import delete_prefixed
from tests.server.social import ADMIN_KEY, Admin, chat_login, login, push, register
from tests.server.support import wait_until

pytestmark = pytest.mark.integration

AppFactory = Callable[..., Awaitable[App]]


@pytest.fixture
async def shared(redis_url: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    prefix = f"test:sessions:{uuid.uuid4().hex}:"
    yield {
        "redis": {"url": redis_url, "prefix": prefix},
        "db": {"url": f"sqlite+aiosqlite:///{tmp_path / 'game.db'}"},
        "mail": {"root": str(tmp_path / "mail")},
        "auth": {"secret": "s" * 48, "single_session": True},
        "moderation": {"admin_key": ADMIN_KEY},
    }
    await delete_prefixed(redis_url, prefix)


async def start(app_factory: AppFactory, shared: dict[str, Any], tmp_path: Path, node: str, **more: Any) -> App:
    return await app_factory(server={"node_id": node, "data_dir": str(tmp_path / node)}, **shared, **more)


@pytest.fixture
async def apps(app_factory: AppFactory, shared: dict[str, Any], tmp_path: Path) -> tuple[App, App]:
    return await start(app_factory, shared, tmp_path, "a"), await start(app_factory, shared, tmp_path, "b")


def presence(app: App) -> PresenceTracker:
    found = app.resources.extra["presence"]
    assert isinstance(found, PresenceTracker)
    return found


async def test_single_session_across_processes(apps: tuple[App, App]) -> None:
    a, b = apps
    first, _, name = await register(a, "ws")
    second, reply = await login(b, name)
    assert reply["ok"], reply
    assert await push(first, "session.replaced") == {"reason": "login"}
    assert await first.close_code() == 1000  # type: ignore[union-attr]
    assert (await second.call("friends.list"))["ok"]


async def test_presence_and_its_pushes_across_processes(apps: tuple[App, App]) -> None:
    a, b = apps
    watcher, _, _ = await register(b)
    player, uid, name = await register(a)
    await presence(a)._changes.join()
    reply = await watcher.call("presence.subscribe", {"uids": [uid]})
    assert reply["data"]["players"][0]["online"] is True
    await player.close()
    gone = await push(watcher, "presence.changed")
    assert (gone["uid"], gone["online"]) == (uid, False)
    await login(a, name)
    assert (await push(watcher, "presence.changed"))["online"] is True


async def test_a_kept_push_is_delivered_on_the_other_process(apps: tuple[App, App]) -> None:
    a, b = apps
    client, uid, name = await register(a)
    await client.close()
    await wait_until(lambda: uid not in presence(a).held)
    await presence(a)._changes.join()
    notify: Notifications = a.resources.extra["notify"]
    assert await notify(uid, "test.kept", {"n": 1}) is False
    again, reply = await login(b, name)
    assert reply["ok"]
    assert await push(again, "test.kept") == {"n": 1}


async def test_a_mute_set_on_one_process_holds_on_the_others_chat(
    apps: tuple[App, App], client_session: aiohttp.ClientSession
) -> None:
    a, b = apps
    gate_m, uid_m, _ = await register(b)
    gate_o, _, _ = await register(b)
    muted, other = await chat_login(b, gate_m), await chat_login(b, gate_o)
    status, _ = await Admin(client_session, a).post("/moderation/mute", {"uid": uid_m, "seconds": 60})
    assert status == 200
    await wait_until(lambda: uid_m in b.resources.extra["chat"].guard.mutes)  # heard through Redis
    await muted.send("PUBLIC", "hello")
    assert await muted.recv() == ("ERROR", "muted")
    await other.send("PUBLIC", "hi")
    assert (await muted.recv_message())[1]["text"] == "hi"


async def test_a_ban_on_one_process_refuses_the_login_on_the_other(
    apps: tuple[App, App], client_session: aiohttp.ClientSession
) -> None:
    a, b = apps
    client, uid, name = await register(b)
    status, _ = await Admin(client_session, a).post("/moderation/ban", {"uid": uid, "reason": "bot"})
    assert status == 200
    assert await client.closed()
    assert (await login(b, name))[1]["error"]["code"] == "banned"


async def test_history_outlives_a_chat_process_restart(
    app_factory: AppFactory, shared: dict[str, Any], tmp_path: Path
) -> None:
    first = await start(app_factory, shared, tmp_path, "a")
    gate, _, _ = await register(first)
    chat = await chat_login(first, gate)
    await chat.send("PUBLIC", "before the restart")
    line = (await chat.recv_message())[1]
    chat_of_first: Chat = first.resources.extra["chat"]
    await chat_of_first.history.flush()
    await first.stop()
    restarted = await start(app_factory, shared, tmp_path, "c")
    other, _, _ = await register(restarted)
    assert (await other.call("chat.history"))["data"]["lines"] == [line]
