"""The in-process bus (gameserver/bus/local.py) and the bound sessions it pushes to (gameserver/bus/sessions.py): plain
calls, no serialisation; :class:`Sessions` tells its presence about a player's first and last connection."""

from __future__ import annotations

import time
from typing import Any

from gameserver.bus.local import LocalBus
from gameserver.bus.sessions import Session, Sessions
from gameserver.protocol.codec import Format
from gameserver.ratelimit import TokenBucket


class Conn(Session):
    """A bound connection that keeps what it is sent, as is."""

    kind = "test"

    def __init__(self, sessions: Sessions, fmt: Format = Format.MSGPACK) -> None:
        super().__init__(sessions, TokenBucket(1e6, 10**6, time.monotonic()))
        self.push_format = fmt
        self.sent: list[tuple[dict[str, Any], Format]] = []

    def send(self, message: dict[str, Any], fmt: Format) -> None:
        self.sent.append((message, fmt))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.sessions.discard(self)  # what the drivers do when the connection goes


class Presence:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def online(self, uid: int) -> None:
        self.calls.append(("online", uid))

    def offline(self, uid: int) -> None:
        self.calls.append(("offline", uid))

    async def ready(self, uid: int, timeout: float) -> bool:
        self.calls.append(("ready", uid))
        return True


def test_push_is_a_plain_call_to_every_connection_of_the_player() -> None:
    sessions = Sessions()
    bus = LocalBus(sessions)
    first, second, other = Conn(sessions), Conn(sessions, Format.JSON), Conn(sessions)
    first.bind(7)
    second.bind(7)
    other.bind(8)
    data = {"mail_id": "m1", "items": [1, 2]}
    bus.push(7, "mail.new", data)
    for conn, fmt in ((first, Format.MSGPACK), (second, Format.JSON)):
        [(message, sent_fmt)] = conn.sent
        assert message == {"event": "mail.new", "data": data} and sent_fmt is fmt
        assert message["data"] is data  # no serialisation on the way
    assert other.sent == []


def test_push_to_a_player_bound_nowhere_is_dropped() -> None:
    sessions = Sessions()
    LocalBus(sessions).push(7, "mail.new", {})
    assert len(sessions) == 0


def test_unbound_and_closed_connections_get_no_push() -> None:
    sessions = Sessions()
    bus = LocalBus(sessions)
    unbound, closed, rebound = Conn(sessions), Conn(sessions), Conn(sessions)
    for conn in (unbound, closed, rebound):
        conn.bind(7)
    unbound.unbind()
    closed.close()
    rebound.bind(8)
    bus.push(7, "mail.new", {})
    assert (unbound.sent, closed.sent, rebound.sent) == ([], [], [])
    assert list(sessions.of(7)) == [] and list(sessions.of(8)) == [rebound]


def test_presence_hears_the_first_and_the_last_connection_of_a_player() -> None:
    sessions = Sessions()
    presence = sessions.presence = Presence()
    first, second = Conn(sessions), Conn(sessions)
    first.bind(7)
    second.bind(7)
    first.bind(7)  # bound again to the same player: nothing new
    assert presence.calls == [("online", 7)]
    first.unbind()
    assert presence.calls == [("online", 7)]
    second.bind(8)  # moves to another player: the last of 7 here, the first of 8
    assert presence.calls == [("online", 7), ("offline", 7), ("online", 8)]
    second.close()
    second.close()  # a second discard of a gone connection changes nothing
    assert presence.calls[3:] == [("offline", 8)]


async def test_bound_is_immediate_without_a_presence() -> None:
    sessions = Sessions()
    conn = Conn(sessions)
    assert await conn.bound()  # not bound yet
    conn.bind(7)
    assert await conn.bound()


async def test_bound_waits_for_the_presence() -> None:
    sessions = Sessions()
    presence = sessions.presence = Presence()
    conn = Conn(sessions)
    assert await conn.bound()  # not bound: nothing to wait for
    conn.bind(7)
    assert await conn.bound()
    assert presence.calls == [("online", 7), ("ready", 7)]


async def test_channels_in_process() -> None:
    bus = LocalBus(Sessions())
    heard: list[tuple[str, bytes]] = []

    def receiver(channel: str, payload: bytes) -> None:
        heard.append((channel, payload))

    bus.subscribe("c", receiver)
    bus.publish("c", b"one")
    bus.publish("d", b"nobody")
    bus.unsubscribe("c", receiver)
    bus.unsubscribe("c", receiver)
    bus.publish("c", b"gone")
    assert heard == [("c", b"one")]
    assert bus.channels == {}
    await bus.close()
