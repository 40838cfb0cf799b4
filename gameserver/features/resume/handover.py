"""A resumable session moving to another gate process (docs/PROTOCOL.md, "Resume", on any gate process).

The process where the client resumes (the taker) asks the one its token names (the holder) over the bus, on the
holder's channel ``session.resume.<process>`` (:meth:`Keys.session_resume`); every message is a msgpack map:

- ``take {ask, from, key, received, route}``: the taker wants session ``key``; what is forwarded later goes to
  ``route`` on process ``from``.
- ``taken {ask, ...}`` on the taker's channel: ``reason`` and ``message`` if it cannot be taken (changing nothing),
  else the session: ``uid``, ``claims``, ``bound_us``, ``seq`` (the last sent), ``evicted`` and the kept messages
  after ``received`` (``entries``: ``[seq, format, bytes]``). From then on the holder writes nothing of it: replies
  to requests still running there come as ``fwd {route, message}`` (numbered by the taker), and pushes to the
  player reach the taker by the player's uid once it has bound the new connection.
- ``release {key}``: the taker has bound the player (its pushes reach it): the holder unbinds the old connection
  (or after :data:`RELEASE_AFTER` seconds without it), so the player stays online throughout.

A holder that does not answer within :data:`TAKE_TIMEOUT` seconds (stopped, killed) makes the resume ``lost``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import TYPE_CHECKING, Any

import msgpack

from gameserver.bus.local import Bus
from gameserver.bus.sessions import BIND_TIMEOUT
from gameserver.errors import ResumeFailed
from gameserver.features.identity.tokens import Claims
from gameserver.features.resume.ring import Ring
from gameserver.keys import Keys
from gameserver.protocol.codec import Format

if TYPE_CHECKING:
    from gameserver.drivers.gate import GateSession
    from gameserver.features.resume.hub import Resumption
    from gameserver.features.resume.state import Resumable

log = logging.getLogger("gameserver.features.resume")

TAKE_TIMEOUT = 1.0  # seconds the taker waits for the holder's answer; then the holder is taken for gone (lost)
RELEASE_AFTER = BIND_TIMEOUT + 1.0  # seconds the holder keeps the old connection bound without a release
SUBSCRIBE_TIMEOUT = 2.0  # seconds start() waits for the bus to confirm this process's channel
FORMATS = (Format.MSGPACK, Format.JSON)  # a format travels as its index here
TAKE, TAKEN, FORWARD, RELEASE = "take", "taken", "fwd", "release"


class Handover:
    """The bus side of one process's :class:`~gameserver.features.resume.hub.Resumption`."""

    def __init__(self, hub: Resumption, bus: Bus, keys: Keys) -> None:
        self.hub = hub
        self.bus = bus
        self.keys = keys
        self.channel = keys.session_resume(hub.id)
        self.asks: dict[int, tuple[asyncio.Future[tuple[Resumable, int]], GateSession, Format, str]] = {}
        self.handed: dict[str, Resumable] = {}  # taken by another process, the old connection still bound here
        self._ids = itertools.count(1)

    async def start(self) -> None:
        self.bus.subscribe(self.channel, self._received)
        await self.bus.subscribed([self.channel], SUBSCRIBE_TIMEOUT)

    async def stop(self) -> None:
        self.bus.unsubscribe(self.channel, self._received)
        for key in list(self.handed):
            self.released(key)

    def _publish(self, holder: str, body: dict[str, Any]) -> None:
        self.bus.publish(self.keys.session_resume(holder), msgpack.packb(body))

    # The taker ------------------------------------------------------------------------------------------------

    async def take(
        self, session: GateSession, holder: str, key: str, received: int, fmt: Format
    ) -> tuple[Resumable, int]:
        """Session ``key`` from process ``holder``, for ``session``: not attached yet, with the ``bound_us`` of its
        binding there. Raises ResumeFailed with the holder's reason, or ``lost`` without an answer."""
        ask = next(self._ids)
        route = self.hub.new_key()
        future: asyncio.Future[tuple[Resumable, int]] = asyncio.get_running_loop().create_future()
        self.asks[ask] = (future, session, fmt, route)
        body = {"op": TAKE, "ask": ask, "from": self.hub.id, "key": key, "received": received, "route": route}
        self._publish(holder, body)
        try:
            async with asyncio.timeout(TAKE_TIMEOUT):
                return await future
        except TimeoutError:
            raise ResumeFailed("lost", "the process that held the session does not answer") from None
        finally:
            self.asks.pop(ask, None)

    def release(self, holder: str, key: str) -> None:
        self._publish(holder, {"op": RELEASE, "key": key})

    def _taken(self, body: dict[str, Any]) -> None:
        asked = self.asks.pop(int(body["ask"]), None)
        if asked is None:
            return  # too late: the client was answered `lost`
        future, session, fmt, route = asked
        if future.done():
            return
        if body.get("reason"):
            future.set_exception(ResumeFailed(str(body["reason"]), str(body["message"]), body.get("uid")))
            return
        hub = self.hub
        ring = Ring(hub.max_count, hub.max_bytes, [(seq, FORMATS[f], data) for seq, f, data in body["entries"]])
        ring.evicted = int(body["evicted"])
        claims = None if body["claims"] is None else Claims(*body["claims"])
        r = hub.new(session, int(body["uid"]), claims, fmt, ring, int(body["seq"]), key=route)
        future.set_result((r, int(body["bound_us"])))

    def _forwarded(self, body: dict[str, Any]) -> None:
        r = self.hub.live.get(str(body["route"]))
        if r is not None:
            try:
                r.send(None, body["message"], r.format)
            except (TypeError, ValueError):
                log.warning("resume: a forwarded message has no %s form", r.format.value)

    # The holder -----------------------------------------------------------------------------------------------

    def forward(self, target: tuple[str, str], message: dict[str, Any]) -> None:
        """A reply for a session another process took: to that process (raises TypeError without msgpack form)."""
        self._publish(target[0], {"op": FORWARD, "route": target[1], "message": message})

    def _take(self, body: dict[str, Any]) -> None:
        taker, ask, key = str(body["from"]), int(body["ask"]), str(body["key"])
        received, route = int(body["received"]), str(body["route"])
        try:
            r = self.hub.takeable(key, received)
        except ResumeFailed as exc:
            sentence = exc.message.partition(": ")[2]
            self._publish(taker, {"op": TAKEN, "ask": ask, "reason": exc.reason, "message": sentence, "uid": exc.uid})
            return
        claims = None if r.claims is None else [r.claims.uid, r.claims.issued_ms, r.claims.auth_time]
        entries = [[seq, FORMATS.index(fmt), data] for seq, fmt, data in r.ring.after(received)]
        answer = {
            "op": TAKEN, "ask": ask, "uid": r.uid, "claims": claims, "bound_us": r.session.bound_us, "seq": r.seq,
            "evicted": r.ring.evicted, "entries": entries,
        }  # fmt: skip
        self._publish(taker, answer)
        self.hub.hand_over(r, (taker, route))
        self.handed[key] = r
        r.timer = asyncio.get_running_loop().call_later(RELEASE_AFTER, self.released, key)

    def released(self, key: str) -> None:
        r = self.handed.pop(key, None)
        if r is not None:
            if r.timer is not None:
                r.timer.cancel()
                r.timer = None
            r.session.sessions.discard(r.session)

    # Both ---------------------------------------------------------------------------------------------------

    def _received(self, channel: str, payload: bytes) -> None:
        try:
            body = msgpack.unpackb(payload, raw=False, strict_map_key=False)
            op = body["op"]
            if op == TAKE:
                self._take(body)
            elif op == TAKEN:
                self._taken(body)
            elif op == FORWARD:
                self._forwarded(body)
            elif op == RELEASE:
                self.released(str(body["key"]))
        except (ValueError, KeyError, TypeError, IndexError, msgpack.UnpackException) as exc:
            log.warning("resume: bad message on %s (%s): %r", channel, exc, payload[:200])
