"""Presence, persisted notifications and single session in one process (docs/PROTOCOL.md, "Presence",
"Persisted notifications", "session.replaced")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from gameserver.app import App
from gameserver.features.notifications import Notifications
from gameserver.features.online import PresenceTracker
from tests.server.social import connect, login, push, register
from tests.server.support import wait_until

AppFactory = Callable[..., Awaitable[App]]


def tracker(app: App) -> PresenceTracker:
    found = app.resources.extra["presence"]
    assert isinstance(found, PresenceTracker)
    return found


async def settled(app: App) -> None:
    """Until the presence changes told so far are in Redis."""
    await tracker(app)._changes.join()


async def test_get_says_who_is_online_and_when_the_others_were_seen(app: App) -> None:
    a, uid_a, _ = await register(app)
    b, uid_b, _ = await register(app)
    await settled(app)
    reply = await a.call("presence.get", {"uids": [uid_a, uid_b, 424242]})
    players = {p["uid"]: p for p in reply["data"]["players"]}
    assert players[uid_a]["online"] and players[uid_b]["online"]
    assert players[424242] == {"uid": 424242, "online": False, "last_seen": None}
    await b.close()
    await wait_until(lambda: uid_b not in tracker(app).held)
    await settled(app)
    after = (await a.call("presence.get", {"uids": [uid_b]}))["data"]["players"][0]
    assert after["online"] is False and after["last_seen"] >= players[uid_b]["last_seen"]


async def test_two_connections_keep_a_player_online_until_the_last_goes(app: App) -> None:
    a, uid, name = await register(app)
    second, reply = await login(app, name)
    assert reply["ok"]
    await a.close()
    await settled(app)
    assert (await tracker(app).get([uid]))[uid]["online"]
    await second.close()
    await wait_until(lambda: uid not in tracker(app).held)
    await settled(app)
    assert not (await tracker(app).get([uid]))[uid]["online"]


async def test_subscribers_get_presence_changed(app: App) -> None:
    watcher, _, _ = await register(app)
    friend, uid, name = await register(app)
    reply = await watcher.call("presence.subscribe", {"uids": [uid]})
    assert reply["data"]["players"][0]["online"] is True
    await friend.close()
    gone = await push(watcher, "presence.changed")
    assert (gone["uid"], gone["online"]) == (uid, False)
    await login(app, name)
    back = await push(watcher, "presence.changed")
    assert (back["uid"], back["online"]) == (uid, True)
    assert (await watcher.call("presence.unsubscribe", {"uids": [uid]}))["data"] == {"count": 1}


async def test_subscribe_checks_its_list(app: App) -> None:
    client, _, _ = await register(app)
    for uids in ("1", [0], ["x"], list(range(1, 300))):
        reply = await client.call("presence.subscribe", {"uids": uids})
        assert reply["error"]["code"] == "bad_request", uids


async def test_a_lapsed_claim_is_swept_and_announced(app: App) -> None:
    """What a SIGKILLed process leaves: a claim nobody refreshes. Forged here with another origin, already lapsed."""
    watcher, _, _ = await register(app)
    presence = tracker(app)
    ghost = 777_001
    await watcher.call("presence.subscribe", {"uids": [ghost]})
    keys = app.resources.keys
    redis = app.resources.redis
    await redis.zadd(keys.presence(ghost), {"deadbeef": 1000})
    await redis.zadd(keys.presence_index(), {f"{ghost} deadbeef": 1000})
    assert not (await presence.get([ghost]))[ghost]["online"]  # lapsed: no ghost, even before the sweep
    await presence.refresh()
    gone = await push(watcher, "presence.changed")
    assert (gone["uid"], gone["online"], gone["last_seen"]) == (ghost, False, 1000 - presence.ttl_ms)
    assert await redis.zcard(keys.presence_index()) == 1  # the watcher, claimed again; the ghost swept


async def test_friends_list_shows_who_is_online(app: App) -> None:
    a, uid_a, _ = await register(app)
    b, uid_b, _ = await register(app)
    assert (await a.call("friends.request", {"to": uid_b}))["ok"]
    assert (await b.call("friends.accept", {"sender": uid_a}))["ok"]
    await settled(app)
    [friend] = (await a.call("friends.list"))["data"]["friends"]
    assert (friend["uid"], friend["online"]) == (uid_b, True)


async def test_a_push_for_an_offline_player_waits_for_their_login(app: App) -> None:
    a, uid_a, name_a = await register(app)
    b, uid_b, _ = await register(app)
    assert (await a.call("friends.request", {"to": uid_b}))["ok"]
    await a.close()
    await wait_until(lambda: uid_a not in tracker(app).held)
    await settled(app)
    assert (await b.call("friends.accept", {"sender": uid_a}))["ok"]  # a is offline: friends.accepted is kept
    notify: Notifications = app.resources.extra["notify"]
    kept = await notify.pending(uid_a)
    assert [item["event"] for item in kept] == ["friends.accepted"]
    again, reply = await login(app, name_a)
    assert reply["ok"]
    data = await push(again, "friends.accepted")
    assert data["uid"] == uid_b
    assert await notify.pending(uid_a) == []


async def test_kept_pushes_are_bounded_and_in_order(app_factory: AppFactory) -> None:
    app = await app_factory(notifications={"max": 3})
    notify: Notifications = app.resources.extra["notify"]
    for n in range(5):
        assert await notify(31337, "test.event", {"n": n}) is False
    assert [item["data"]["n"] for item in await notify.pending(31337)] == [2, 3, 4]


async def test_a_push_for_an_online_player_is_not_kept(app: App) -> None:
    client, uid, _ = await register(app)
    await settled(app)
    notify: Notifications = app.resources.extra["notify"]
    assert await notify(uid, "test.event", {"n": 1}) is True
    assert await push(client, "test.event") == {"n": 1}
    assert await notify.pending(uid) == []


@pytest.mark.parametrize("how", ["login", "bind"])
async def test_single_session_replaces_the_older_connection(app_factory: AppFactory, how: str) -> None:
    app = await app_factory(auth={"single_session": True})
    first, uid, name = await register(app, "ws")
    older, reply = await login(app, name)  # on raw TCP: replaces the WebSocket one
    assert reply["ok"], reply
    assert await push(first, "session.replaced") == {"reason": "login"}
    assert await first.close_code() == 1000  # type: ignore[union-attr]
    if how == "login":
        newest, reply = await login(app, name)
    else:
        newest = await connect(app)
        reply = await newest.call("session.bind", {"token": reply["data"]["token"]})
    assert reply["ok"], reply
    assert await push(older, "session.replaced") == {"reason": how}
    assert await older.closed()  # type: ignore[union-attr]
    assert (await newest.call("presence.get", {"uids": [uid]}))["ok"]  # the newest goes on


async def test_without_single_session_both_stay(app: App) -> None:
    first, _, name = await register(app)
    second, reply = await login(app, name)
    assert reply["ok"]
    assert (await first.call("friends.list"))["ok"]  # still bound
