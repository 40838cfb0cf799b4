"""Resume in one process, through real sockets (docs/PROTOCOL.md, "Resume"; issue 16 item 1)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from gameserver.app import App
from gameserver.features.identity.revocations import Revocations
from gameserver.features.notifications import Notifications
from gameserver.features.online import PresenceTracker
from tests.clients import TcpClient, WsClient
from tests.fixtures.modules import PATH as FIXTURE_MODULES
from tests.server.resume_kit import Player, drop, hub, recv, state
from tests.server.social import ADMIN_KEY, Admin, connect, login
from tests.server.support import wait_until

AppFactory = Callable[..., Awaitable[App]]


@pytest.fixture
async def start(app_factory: AppFactory) -> Callable[..., Awaitable[App]]:
    async def started(**sections: Any) -> App:
        return await app_factory(modules={"paths": [FIXTURE_MODULES]}, **sections)

    return started


@pytest.fixture
async def app(start: Callable[..., Awaitable[App]]) -> App:
    return await start(moderation={"admin_key": ADMIN_KEY})


async def dropped(app: App, player: Player) -> None:
    """Break the player's connection and wait until the server has noticed."""
    drop(player.client)
    r = state(app, player.token)
    assert r is not None
    await wait_until(lambda: not r.attached)


@pytest.mark.parametrize(("kind", "binary"), [("tcp", True), ("ws", False)], ids=["tcp", "ws-json"])
async def test_pushes_while_dropped_arrive_once_in_order(app: App, kind: str, binary: bool) -> None:
    player = await Player.register(app)
    assert (await player.call("testkit.add", {"a": 1, "b": 2}))["data"] == 3
    await dropped(app, player)
    assert app.resources.sessions.of(player.uid), "the player stays bound (online) during the grace"
    for n in range(5):
        app.resources.bus.push(player.uid, "test.tick", {"n": n})
    reply = await player.resume(app, kind, binary=binary)
    assert reply["ok"] and reply["data"]["uid"] == player.uid and reply["data"]["replayed"] == 5, reply
    assert [m["data"]["n"] for m in player.numbered if m.get("event") == "test.tick"] == [0, 1, 2, 3, 4]
    assert (await player.call("testkit.whoami"))["data"] == player.uid  # bound again, no token needed
    app.resources.bus.push(player.uid, "test.tick", {"n": 5})
    assert (await player.take())["data"] == {"n": 5}
    assert [m["seq"] for m in player.numbered] == list(range(1, 10))


async def test_reply_of_a_request_cut_off_arrives_once_on_the_new_connection(app: App) -> None:
    player = await Player.register(app)
    other = await connect(app)
    assert isinstance(player.client, TcpClient)
    name = f"cut-{uuid.uuid4().hex}"
    player.client.send({"id": 77, "fn": "testkit.hold", "args": {"name": name}})
    await wait_until_holding(other, name)
    await dropped(app, player)
    reply = await player.resume(app)
    assert reply["ok"] and reply["data"]["replayed"] == 0, reply
    assert (await other.call("testkit.release", {"name": name}))["ok"]
    held = await player.take()
    assert held["id"] == 77 and held["data"] == name, held
    assert (await player.call("testkit.add", {"a": 2}))["data"] == 2  # nothing else came in between
    assert sum(m.get("id") == 77 for m in player.numbered) == 1


async def wait_until_holding(client: TcpClient | WsClient, name: str) -> None:
    while True:
        reply = await client.call("testkit.holding", {"name": name})
        assert reply["ok"], reply
        if reply["data"]:
            return


async def test_kept_messages_after_received_only(app: App) -> None:
    """Messages the client has (seq <= received) are never sent again; ack frees them."""
    player = await Player.register(app)
    for n in range(3):
        assert (await player.call("testkit.push", {"event": "test.tick", "data": n}))["ok"]
    assert player.received == 7  # the register reply, then a push and a reply each
    ack = await player.call("session.ack", {"received": player.received})
    assert ack["ok"] and ack["data"] == {}, ack
    r = state(app, player.token)
    assert r is not None and len(r.ring) == 1  # the ack's own reply
    await dropped(app, player)
    player.received -= 3
    assert await player.failed_resume(app) == "invalid"  # below what it acknowledged: those are gone
    player.received += 3
    reply = await player.resume(app)
    assert reply["data"]["replayed"] == 0, reply


async def test_resume_failed_expired(start: Callable[..., Awaitable[App]]) -> None:
    app = await start(session={"resume_grace": 1.0})
    player = await Player.register(app)
    key = player.token.partition(".")[2]
    await dropped(app, player)
    await wait_until(lambda: key not in hub(app).live)
    assert not list(app.resources.sessions.of(player.uid))  # offline once the grace is over
    assert await player.failed_resume(app) == "expired"


async def test_resume_failed_overflow(start: Callable[..., Awaitable[App]]) -> None:
    app = await start(session={"resume_buffer": 3})
    player = await Player.register(app)
    await dropped(app, player)
    for n in range(3):  # the register reply is kept (not acknowledged): one more than fits
        app.resources.bus.push(player.uid, "test.tick", {"n": n})
    assert state(app, player.token) is None
    assert await player.failed_resume(app) == "overflow"


async def test_a_connected_client_is_not_dropped_for_not_acknowledging(start: Callable[..., Awaitable[App]]) -> None:
    app = await start(session={"resume_buffer": 3})
    player = await Player.register(app)
    for n in range(5):
        assert (await player.call("testkit.push", {"event": "test.tick", "data": n}))["ok"]
    await dropped(app, player)
    reply = await player.resume(app)  # it has everything the buffer gave up
    assert reply["ok"] and reply["data"]["replayed"] == 0, reply


async def test_resume_failed_replaced_by_single_session(start: Callable[..., Awaitable[App]]) -> None:
    app = await start(auth={"single_session": True})
    player = await Player.register(app)
    await dropped(app, player)
    again, reply = await login(app, player.name)
    assert reply["ok"], reply
    assert await player.failed_resume(app) == "replaced"
    assert [s.is_open() for s in app.resources.sessions.of(player.uid)] == [True]
    await again.close()


async def test_resume_failed_after_logout(app: App) -> None:
    player = await Player.register(app)
    reply = await player.client.call("auth.logout")
    assert reply["ok"] and "seq" not in reply, reply  # the session ended before the reply: it is not numbered
    await player.client.close()
    assert await player.failed_resume(app) == "replaced"


async def test_a_websocket_closed_by_its_client_ends_the_session(app: App) -> None:
    """A close frame with 1000 is a goodbye, not a drop: the player is offline at once, and a resume says why."""
    player = await Player.register(app, "ws")
    presence = app.resources.extra["presence"]
    assert isinstance(presence, PresenceTracker) and await presence.is_online(player.uid)
    await player.client.close()  # close frame, code 1000
    assert await wait_until_offline(presence, player.uid)
    assert state(app, player.token) is None
    assert await player.failed_resume(app) == "closed"


async def wait_until_offline(presence: PresenceTracker, uid: int) -> bool:
    for _ in range(200):
        if not await presence.is_online(uid):
            return True
        await asyncio.sleep(0.01)
    return False


async def test_resume_failed_revoked(app: App) -> None:
    player = await Player.register(app)
    await dropped(app, player)
    revocations = app.resources.extra["revocations"]
    assert isinstance(revocations, Revocations)
    await revocations.revoke(player.uid)
    assert await player.failed_resume(app) == "revoked"


async def test_resume_failed_banned(app: App, client_session: aiohttp.ClientSession) -> None:
    player = await Player.register(app)
    await dropped(app, player)
    status, body = await Admin(client_session, app).post("/moderation/ban", {"uid": player.uid, "reason": "spam"})
    assert status == 200, body
    assert await player.failed_resume(app) == "banned"


async def test_resume_failed_invalid(app: App) -> None:
    player = await Player.register(app)
    holder, _, key = player.token.partition(".")
    for token in ("garbage", f"{holder}.{'0' * 32}x", 42):
        client = await connect(app)
        reply = await client.call("session.resume", {"token": token, "received": 0})
        assert reply["error"]["code"] in ("resume_failed", "bad_request"), reply
        if reply["error"]["code"] == "resume_failed":
            assert reply["error"]["message"].startswith("invalid: "), reply
    forged = await connect(app)
    reply = await forged.call("session.resume", {"token": f"{holder}.{'0' * 32}", "received": 0})
    assert reply["error"]["message"].startswith("expired: "), reply  # well formed, names no session
    huge = await connect(app)
    reply = await huge.call("session.resume", {"token": player.token, "received": 2**60})
    assert reply["error"]["message"].startswith("invalid: "), reply
    await dropped(app, player)
    player.received += 1  # more than the server sent
    assert await player.failed_resume(app) == "invalid"
    player.received -= 1
    late = await connect(app)
    assert (await late.call("testkit.add", {"a": 1}))["ok"]
    reply = await late.call("session.resume", {"token": player.token, "received": 0})
    assert reply["error"]["message"].startswith("invalid: "), reply  # not the connection's first request
    assert (await player.resume(app))["ok"]  # nothing changed by the failures


async def test_resume_failed_lost_when_the_holder_is_gone(app: App) -> None:
    client = await connect(app)
    reply = await client.call("session.resume", {"token": f"{'ab' * 8}.{'cd' * 16}", "received": 0})
    assert reply["error"]["message"].startswith("lost: "), reply


async def test_resuming_a_connection_still_open_closes_it(app: App) -> None:
    old = await WsClient.open(app.ports["ws"])
    reply = await old.call(
        "auth.register", {"username": "stillopen", "password": "correct horse battery", "resume": True}
    )
    player = Player(old, reply["data"]["uid"], "stillopen", reply["data"]["resume"]["token"])
    player.note(reply)
    reply = await player.resume(app)
    assert reply["ok"], reply
    assert await old.close_code() == 1000 and old.ws.close_reason == "session resumed"
    assert (await player.call("testkit.whoami"))["data"] == player.uid
    assert len(list(app.resources.sessions.of(player.uid))) == 1


async def test_bind_with_resume(app: App) -> None:
    player = await Player.register(app)
    first = await connect(app)
    token = await first.call("auth.refresh", token=None)  # unbound: refused
    assert not token["ok"]
    refreshed = await player.call("auth.refresh")
    client = await connect(app)
    reply = await client.call("session.bind", {"token": refreshed["data"]["token"], "resume": True})
    assert reply["ok"] and reply["seq"] == 1 and reply["data"]["resume"]["token"] != player.token, reply


async def test_a_client_that_did_not_ask_sees_no_seq(app: App) -> None:
    client, reply = await login(app, (await Player.register(app)).name)
    assert reply["ok"] and "seq" not in reply and "resume" not in reply["data"], reply
    app.resources.bus.push(reply["data"]["uid"], "test.tick", 2)
    assert await recv(client) == {"event": "test.tick", "data": 2}
    ack = await client.call("session.ack", {"received": 3})
    assert ack == {"id": ack["id"], "ok": True, "data": {}}, ack


async def test_a_kept_push_with_no_json_form_keeps_its_place(app: App) -> None:
    player = await Player.register(app)
    await dropped(app, player)
    app.resources.bus.push(player.uid, "test.bytes", b"\x00\x01")  # msgpack has bytes, JSON has not
    app.resources.bus.push(player.uid, "test.tick", {"n": 1})
    reply = await player.resume(app, "ws", binary=False)
    assert reply["ok"] and reply["data"]["replayed"] == 2, reply
    assert [(m["event"], m["data"]) for m in player.numbered[-2:]] == [("test.bytes", None), ("test.tick", {"n": 1})]


async def test_a_stopping_process_ends_its_dropped_sessions(app: App) -> None:
    player = await Player.register(app)
    await dropped(app, player)
    key = player.token.partition(".")[2]
    await app.stop()
    assert not list(app.resources.sessions.of(player.uid))  # offline: nobody will resume it here
    assert hub(app).tombstones[key][0] == "lost" and not hub(app).live


async def test_a_dropped_session_is_online_and_gets_its_notifications(app: App) -> None:
    player = await Player.register(app)
    await dropped(app, player)
    presence = app.resources.extra["presence"]
    assert isinstance(presence, PresenceTracker) and await presence.is_online(player.uid)
    notify = app.resources.extra["notify"]
    assert isinstance(notify, Notifications)
    assert await notify(player.uid, "test.note", {"n": 1}) is True  # pushed (to the kept session), not stored
    assert await notify.pending(player.uid) == []
    reply = await player.resume(app)
    assert reply["data"]["replayed"] == 1 and player.numbered[-1]["event"] == "test.note", reply
