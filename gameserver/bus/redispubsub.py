"""The bus when processes share Redis (``server.bus``; docs/architecture.md, "Scaling out").

:class:`RedisBus` is :class:`~gameserver.bus.local.LocalBus` with its channels and pushes going through the
process's one :class:`~gameserver.bus.fanout.RedisFanout` (one subscriber connection, shared with the chat edge).

A push (PROTOCOL.md, "Server push") to ``uid`` is encoded once, as the msgpack map ``{"origin", "uid",
"event", "data"}``, and published on ``push.<uid>`` (:meth:`Keys.push_user`). A process subscribes to that
channel while it has at least one gate connection bound to ``uid`` (:class:`~gameserver.bus.sessions.Presence`:
from the first bind to the last unbind or close) and hands each push to those connections, each in its own
push format. The pushing process delivers to its own connections at once, with no Redis in between, and
skips its own message when the subscription brings it back (``origin`` is this bus's random id, not the
configurable node id, which two processes may share by mistake): every connection gets a push once.

Pub/sub keeps nothing: a push published while the player is bound nowhere, or while a subscriber's
connection to Redis is down, is lost for them (``mail.new`` only announces a mail that ``mail.list`` shows).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import msgpack

from gameserver.bus.fanout import RedisFanout
from gameserver.bus.local import LocalBus, Receiver
from gameserver.bus.sessions import Sessions
from gameserver.dispatch.dispatcher import Dispatcher
from gameserver.keys import Keys

log = logging.getLogger("gameserver.bus.local")


class RedisBus(LocalBus):
    """Submit in this process; publish, subscribe and push through Redis.

    Args:
        sessions: this process's bound connections; the bus becomes their ``presence``.
        fanout: the process's Redis fan-out, started; :meth:`close` closes it.
        keys: channel names (with the Redis prefix).
        dispatcher: as for :class:`LocalBus`.
    """

    def __init__(
        self, sessions: Sessions, fanout: RedisFanout, keys: Keys, dispatcher: Dispatcher | None = None
    ) -> None:
        super().__init__(sessions, dispatcher)
        self.fanout = fanout
        self.keys = keys
        self.origin = secrets.token_hex(8)
        sessions.presence = self

    def push(self, uid: int, event: str, data: Any) -> None:
        # Encode first: a push with no wire form raises (TypeError, ValueError) before anyone gets it.
        payload = msgpack.packb({"origin": self.origin, "uid": uid, "event": event, "data": data})
        self.sessions.push(uid, event, data)
        self.fanout.publish(self.keys.push_user(uid), payload)

    def publish(self, channel: str, payload: bytes) -> None:
        self.fanout.publish(channel, payload)

    def subscribe(self, channel: str, receiver: Receiver) -> None:
        self.fanout.subscribe(channel, receiver)

    def unsubscribe(self, channel: str, receiver: Receiver) -> None:
        self.fanout.unsubscribe(channel, receiver)

    async def subscribed(self, channels: list[str], timeout: float) -> bool:
        return await self.fanout.subscribed(channels, timeout)

    async def close(self) -> None:
        self.sessions.presence = None
        await self.fanout.close()

    # Presence: which players' pushes this process listens to -----------------------------------------------

    def online(self, uid: int) -> None:
        self.fanout.subscribe(self.keys.push_user(uid), self._received)

    def offline(self, uid: int) -> None:
        self.fanout.unsubscribe(self.keys.push_user(uid), self._received)

    async def ready(self, uid: int, timeout: float) -> bool:
        if await self.fanout.subscribed([self.keys.push_user(uid)], timeout):
            return True
        log.warning("bus: Redis did not confirm the push subscription of uid %d within %gs", uid, timeout)
        return False

    def _received(self, channel: str, payload: bytes) -> None:
        try:
            push = msgpack.unpackb(payload, raw=False, strict_map_key=False)  # our own bytes: any key a push had
            if push["origin"] == self.origin:
                return  # delivered here when it was pushed
            uid, event, data = push["uid"], push["event"], push["data"]
        except (ValueError, KeyError, TypeError, msgpack.UnpackException):
            log.warning("bus: bad push on %s: %r", channel, payload[:200])
            return
        self.sessions.push(uid, event, data)
