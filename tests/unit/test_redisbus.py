"""Pushes between processes (gameserver/bus/redispubsub.py) over an in-memory stand-in for Redis pub/sub: what a
process subscribes to, what it publishes, and that every connection gets a push once. The real Redis is in
tests/integration/test_push_redis.py."""

from __future__ import annotations

import logging
from typing import Any

import msgpack
import pytest

from gameserver.bus.local import Receiver
from gameserver.bus.redispubsub import RedisBus
from gameserver.bus.sessions import Sessions
from gameserver.keys import Keys
from gameserver.protocol.codec import Format
from tests.unit.test_bus import Conn

KEYS = Keys("t:")


class Hub:
    """Redis pub/sub in memory: a publish reaches every subscribed fan-out at once, in order."""

    def __init__(self) -> None:
        self.fanouts: list[FakeFanout] = []
        self.published: list[tuple[str, bytes]] = []

    def numsub(self, channel: str) -> int:
        return sum(channel in fanout.receivers for fanout in self.fanouts)


class FakeFanout:
    """What :class:`RedisBus` uses of :class:`~gameserver.bus.fanout.RedisFanout`."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        hub.fanouts.append(self)
        self.receivers: dict[str, set[Receiver]] = {}
        self.commands: list[tuple[str, str]] = []
        self.confirm = True
        self.closed = False

    def publish(self, channel: str, payload: bytes) -> None:
        self.hub.published.append((channel, payload))
        for fanout in self.hub.fanouts:
            for receiver in tuple(fanout.receivers.get(channel, ())):
                receiver(channel, payload)

    def subscribe(self, channel: str, receiver: Receiver) -> None:
        if channel not in self.receivers:
            self.commands.append(("SUBSCRIBE", channel))
        self.receivers.setdefault(channel, set()).add(receiver)

    def unsubscribe(self, channel: str, receiver: Receiver) -> None:
        receivers = self.receivers.get(channel, set())
        receivers.discard(receiver)
        if not receivers and self.receivers.pop(channel, None) is not None:
            self.commands.append(("UNSUBSCRIBE", channel))

    async def subscribed(self, channels: list[str], timeout: float) -> bool:
        return self.confirm

    async def close(self) -> None:
        self.closed = True


def process(hub: Hub) -> tuple[RedisBus, Sessions, FakeFanout]:
    sessions = Sessions()
    fanout = FakeFanout(hub)
    return RedisBus(sessions, fanout, KEYS), sessions, fanout  # type: ignore[arg-type]


def pushes(conn: Conn) -> list[tuple[Any, Format]]:
    return [(message["data"], fmt) for message, fmt in conn.sent]


def test_a_push_reaches_the_player_on_another_process_in_its_push_format() -> None:
    hub = Hub()
    a, _, _ = process(hub)
    _, b_sessions, _ = process(hub)
    json_conn, msgpack_conn = Conn(b_sessions, Format.JSON), Conn(b_sessions)
    json_conn.bind(7)
    msgpack_conn.bind(7)
    a.push(7, "mail.new", {"mail_id": "m1"})
    assert json_conn.sent == [({"event": "mail.new", "data": {"mail_id": "m1"}}, Format.JSON)]
    assert msgpack_conn.sent == [({"event": "mail.new", "data": {"mail_id": "m1"}}, Format.MSGPACK)]


def test_encoded_once_and_published_on_the_players_channel() -> None:
    hub = Hub()
    a, _, _ = process(hub)
    a.push(7, "mail.new", {1: "an int key", "b": b"\x00"})
    [(channel, payload)] = hub.published
    assert channel == "t:push.7"
    envelope = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    assert envelope == {"origin": a.origin, "uid": 7, "event": "mail.new", "data": {1: "an int key", "b": b"\x00"}}


def test_every_connection_gets_a_push_once_wherever_it_was_pushed_from() -> None:
    hub = Hub()
    a, a_sessions, _ = process(hub)
    b, b_sessions, _ = process(hub)
    on_a, on_b1, on_b2 = Conn(a_sessions), Conn(b_sessions), Conn(b_sessions, Format.JSON)
    for conn in (on_a, on_b1, on_b2):
        conn.bind(7)
    assert hub.numsub("t:push.7") == 2  # one subscription per process, not per connection
    a.push(7, "e", 1)
    b.push(7, "e", 2)
    for conn in (on_a, on_b1, on_b2):
        assert [data for data, _ in pushes(conn)] == [1, 2]


def test_the_pushing_process_delivers_to_its_own_connections_without_redis() -> None:
    hub = Hub()
    a, a_sessions, a_fanout = process(hub)
    conn = Conn(a_sessions)
    conn.bind(7)
    a_fanout.receivers.clear()  # as if Redis were away: the local connection gets the push all the same
    a.push(7, "e", 1)
    assert pushes(conn) == [(1, Format.MSGPACK)]


def test_subscribed_from_the_first_bind_to_the_last_unbind_or_close() -> None:
    hub = Hub()
    _, sessions, fanout = process(hub)
    first, second = Conn(sessions), Conn(sessions)
    first.bind(7)
    second.bind(7)
    assert fanout.commands == [("SUBSCRIBE", "t:push.7")]
    first.unbind()
    assert fanout.commands == [("SUBSCRIBE", "t:push.7")]
    second.bind(8)
    assert fanout.commands[1:] == [("UNSUBSCRIBE", "t:push.7"), ("SUBSCRIBE", "t:push.8")]
    second.close()
    assert fanout.commands[3:] == [("UNSUBSCRIBE", "t:push.8")]
    assert fanout.receivers == {}


def test_no_push_after_the_last_connection_goes() -> None:
    hub = Hub()
    a, _, _ = process(hub)
    _, b_sessions, _ = process(hub)
    conn = Conn(b_sessions)
    conn.bind(7)
    conn.close()
    a.push(7, "e", 1)
    assert conn.sent == [] and hub.numsub("t:push.7") == 0


def test_a_push_with_no_wire_form_fails_before_anyone_gets_it() -> None:
    hub = Hub()
    a, a_sessions, _ = process(hub)
    conn = Conn(a_sessions)
    conn.bind(7)
    with pytest.raises(TypeError):
        a.push(7, "e", object())
    assert conn.sent == [] and hub.published == []


def test_a_bad_push_on_the_channel_is_logged_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub()
    _, sessions, fanout = process(hub)
    conn = Conn(sessions)
    conn.bind(7)
    with caplog.at_level(logging.WARNING, "gameserver.bus.local"):
        for payload in (b"\xc1", msgpack.packb({"origin": "x"}), msgpack.packb([1, 2])):
            fanout.publish("t:push.7", payload)
    assert conn.sent == []
    assert [record.getMessage().startswith("bus: bad push on t:push.7") for record in caplog.records] == [True] * 3


async def test_bound_waits_for_the_subscription(caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub()
    _, sessions, fanout = process(hub)
    conn = Conn(sessions)
    conn.bind(7)
    assert await conn.bound()
    fanout.confirm = False
    with caplog.at_level(logging.WARNING, "gameserver.bus.local"):
        assert not await conn.bound(0.01)
    assert "did not confirm the push subscription of uid 7" in caplog.text


async def test_channels_go_through_the_fanout_and_close_closes_it() -> None:
    hub = Hub()
    a, a_sessions, a_fanout = process(hub)
    b, _, _ = process(hub)
    heard: list[bytes] = []

    def receiver(channel: str, payload: bytes) -> None:
        heard.append(payload)

    b.subscribe("chat", receiver)
    a.publish("chat", b"hello")
    b.unsubscribe("chat", receiver)
    a.publish("chat", b"gone")
    assert heard == [b"hello"] and a.channels == {}
    await a.close()
    assert a_fanout.closed and a_sessions.presence is None
