"""This gate process's resumable sessions (docs/PROTOCOL.md, "Resume"): made resumable at a login or bind, kept
through a dropped connection for ``session.resume_grace`` seconds, resumed on a new connection here, or handed
over to another gate process (gameserver/features/resume/handover.py), dropped with a reason the client is told.

A token is ``<process>.<key>``: the process (this hub's random id, not the configurable node id) that holds the
session, and 128 random bits that name it there. Nothing else is in it: a forged or guessed one names nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import TYPE_CHECKING, Any

from gameserver import metrics
from gameserver.bus.local import Bus
from gameserver.config import SessionConfig
from gameserver.errors import BadRequest, CloseCode, GameError, RateLimited, ResumeFailed, Unavailable
from gameserver.features.identity.revocations import Revocations
from gameserver.features.identity.tokens import Claims
from gameserver.features.moderation.store import Moderation
from gameserver.features.resume.handover import Handover
from gameserver.features.resume.ring import Ring, recode
from gameserver.features.resume.state import UNBOUND_SENTENCES, Resumable
from gameserver.keys import Keys
from gameserver.protocol.codec import Format, encode_json, encode_msgpack
from gameserver.protocol.envelope import BadEnvelope, error_reply, ok_reply, parse_request

if TYPE_CHECKING:
    from gameserver.drivers.gate import GateSession

log = logging.getLogger("gameserver.features.resume")

RESUME_FN = "session.resume"
ACK_FN = "session.ack"
RESUMED_REASON = "session resumed"  # the close reason of a connection whose session moved to a newer one
HOLDER_CHARS = 16  # hex characters of a process's id in a token
KEY_CHARS = 32  # hex characters of a session's key: 128 bits
TOMBSTONES_MAX = 100_000  # ended sessions whose reason is remembered (each for the grace period)
EXPIRED = "the grace period ended, or the token names no session any more"


def parse_token(token: object) -> tuple[str, str]:
    """``(process, key)``; raises ResumeFailed ``invalid``."""
    if type(token) is str:
        holder, _, key = token.partition(".")
        if len(holder) == HOLDER_CHARS and len(key) == KEY_CHARS and _hex(holder) and _hex(key):
            return holder, key
    raise ResumeFailed("invalid", "the token is malformed")


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


class Resumption:
    """The ``session.resume`` side of a gate process.

    Args:
        config: ``[session]``: the grace and the buffer's bounds.
        bus: carries hand-overs between gate processes.
        keys: the channel names.
        revocations: a revoked player's session does not resume.
        moderation: a banned player's session does not resume (None: no bans).
    """

    def __init__(
        self,
        config: SessionConfig,
        *,
        bus: Bus,
        keys: Keys,
        revocations: Revocations,
        moderation: Moderation | None = None,
    ) -> None:
        self.grace = config.resume_grace
        self.max_count = config.resume_buffer
        self.max_bytes = config.resume_bytes
        self.revocations = revocations
        self.moderation = moderation
        self.id = secrets.token_hex(HOLDER_CHARS // 2)
        self.live: dict[str, Resumable] = {}  # by key: attached, dropped and waiting, or being taken over
        self.tombstones: dict[str, tuple[str, str, float, int]] = {}  # key -> (reason, sentence, until, uid)
        self.stopping = False
        self.handover = Handover(self, bus, keys)
        self._tasks: set[asyncio.Task[None]] = set()

    # Lifespan -----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.handover.start()
        metrics.RESUMABLE.set_function(lambda: len(self.live))
        metrics.DETACHED.set_function(lambda: sum(not r.attached for r in self.live.values()))

    def drain(self) -> None:
        """The process stops: the dropped sessions end now (``lost``), those still attached as they drop."""
        self.stopping = True
        for r in list(self.live.values()):
            if not r.attached:
                self.drop(r, "lost", "the process that held the session stopped")

    async def stop(self) -> None:
        self.drain()
        for r in list(self.live.values()):
            self.drop(r, "lost", "the process that held the session stopped")
        for task in list(self._tasks):
            task.cancel()
        await self.handover.stop()

    # A session's life ---------------------------------------------------------------------------------------

    def token(self, r: Resumable) -> str:
        return f"{self.id}.{r.key}"

    def info(self, r: Resumable) -> dict[str, Any]:
        """The ``resume`` object of a login, bind or resume reply."""
        return {"token": self.token(r), "grace": self.grace, "buffer": self.max_count}

    @staticmethod
    def new_key() -> str:
        return secrets.token_hex(KEY_CHARS // 2)

    def new(
        self,
        session: GateSession,
        uid: int,
        claims: Claims | None,
        fmt: Format,
        ring: Ring | None = None,
        seq: int = 0,
        *,
        key: str = "",
    ) -> Resumable:
        """A new resumable session here, not attached yet."""
        key = key or self.new_key()
        r = Resumable(self, key, session, uid, claims, fmt, ring or Ring(self.max_count, self.max_bytes), seq)
        self.live[key] = r
        return r

    def enable(self, session: GateSession) -> dict[str, Any] | None:
        """Make ``session`` (just bound by a login or bind that asked for it) resumable; its ``resume`` object, or
        None if it cannot be (closed meanwhile, the process stopping)."""
        uid = session.uid
        if self.stopping or uid is None or session.conn.closed:
            return None
        r = session.resume
        if r is not None and r.session is session and r.dropped is None:
            if r.uid == uid:
                r.claims = session.claims
                return self.info(r)
            self.drop(r, "replaced", "the connection logged in as another player")
        r = self.new(session, uid, session.claims, session.push_format)
        r.attached = True
        session.adopt(r)
        log.debug("uid %d: session %s is resumable", uid, session.peer)
        return self.info(r)

    def detach(self, r: Resumable) -> None:
        """``r``'s connection dropped: keep it for the grace period (or end it, if the process is stopping)."""
        if self.stopping:
            self.drop(r, "lost", "the process that held the session stopped")
            return
        if r.timer is not None:
            return  # already
        r.attached = False
        loop = asyncio.get_running_loop()
        r.since = loop.time()
        r.timer = loop.call_later(self.grace, self.drop, r, "expired", "the grace period ended")
        log.info("uid %d: connection %s dropped; session kept %gs", r.uid, r.session.peer, self.grace)

    def drop(self, r: Resumable, reason: str, sentence: str) -> None:
        """End ``r``: a later resume answers ``resume_failed`` ``reason``."""
        if r.dropped is not None:
            return
        r.dropped = reason
        if r.timer is not None:
            r.timer.cancel()
            r.timer = None
        self.live.pop(r.key, None)
        self.remember(r.key, reason, sentence, r.uid)
        session = r.session
        if session.resume is r:
            session.abandon()
        if not r.attached:
            session.sessions.discard(session)  # a dropped connection: the player's presence here ends
        log.info("uid %d: resumable session ended: %s", r.uid, reason)

    def remember(self, key: str, reason: str, sentence: str, uid: int) -> None:
        """Why session ``key`` ended, for the grace period (oldest forgotten first)."""
        now = asyncio.get_running_loop().time()
        tombstones = self.tombstones
        tombstones[key] = (reason, sentence, now + self.grace, uid)
        while tombstones:
            oldest, (_, _, until, _) = next(iter(tombstones.items()))
            if until > now and len(tombstones) <= TOMBSTONES_MAX:
                break
            del tombstones[oldest]

    def gone(self, key: str) -> ResumeFailed:
        """Why ``key`` names no live session here."""
        reason, sentence, _, uid = self.tombstones.get(key, ("expired", EXPIRED, 0.0, None))
        return ResumeFailed(reason, sentence, uid)

    async def banned(self, uid: int) -> bool:
        """Whether ``uid`` is banned now; raises Unavailable if that cannot be read."""
        try:
            return self.moderation is not None and await self.moderation.banned(uid) is not None
        except Exception as exc:
            log.warning("resume of uid %d: bans not readable: %s", uid, exc)
            raise Unavailable() from None

    async def why(self, exc: ResumeFailed) -> ResumeFailed:
        """``exc``, or ``banned`` for a revocation that came with a ban (recorded after it)."""
        if exc.reason == "revoked" and exc.uid is not None and await self.banned(exc.uid):
            return ResumeFailed("banned", "the player is banned", exc.uid)
        return exc

    # Requests on a resumable connection -----------------------------------------------------------------------

    def ack(self, session: GateSession, message: dict[str, Any], fmt: Format) -> None:
        """``session.ack {"received"}`` on a resumable connection: free what the client has. Answered here, in
        the gate process that holds the session."""
        try:
            request = parse_request(message)
        except BadEnvelope as exc:
            session.write_message(error_reply(exc.request_id, exc.code, exc.message), fmt)
            return
        r = session.resume
        try:
            if not session.bucket.take(asyncio.get_running_loop().time()):
                raise RateLimited("over the connection's request rate")
            received = request.args.get("received")
            if type(received) is not int or received < 0 or set(request.args) - {"received"}:
                raise BadRequest("session.ack takes one argument, received: an integer >= 0")
            if r is not None and received > r.seq:
                raise BadRequest(f"received {received} is beyond the last message sent ({r.seq})")
        except GameError as exc:
            session.send(error_reply(request.id, exc.code, exc.message), fmt)
            return
        if r is not None:
            r.ring.ack(received)
        session.send(ok_reply(request.id, {}), fmt)

    def start_resume(self, session: GateSession, message: dict[str, Any], fmt: Format) -> None:
        """``session.resume``, the first request on a new connection."""
        try:
            request = parse_request(message)
        except BadEnvelope as exc:
            session.write_message(error_reply(exc.request_id, exc.code, exc.message), fmt)
            return
        token, received = request.args.get("token"), request.args.get("received")
        if type(received) is not int or received < 0 or set(request.args) - {"token", "received"}:
            error = BadRequest("session.resume takes token (a string) and received (an integer >= 0)")
            session.write_message(error_reply(request.id, error.code, error.message), fmt)
            return
        session.pending += 1
        task = asyncio.create_task(self._resume(session, request.id, token, received, fmt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resume(self, session: GateSession, request_id: int, token: object, received: int, fmt: Format) -> None:
        try:
            holder, key = parse_token(token)
            if holder == self.id:
                r = await self._take_local(session, key, received)
            else:
                r, bound_us = await self.handover.take(session, holder, key, received, fmt)
                try:
                    await self._check(r)
                    self._bind(r, session, bound_us)
                    await session.bound()
                finally:
                    self.handover.release(holder, key)
            self._attach(r, session, request_id, received, fmt)
        except GameError as failure:
            exc = failure
            if isinstance(exc, ResumeFailed):
                with contextlib.suppress(GameError):
                    exc = await self.why(exc)
            outcome = exc.reason if isinstance(exc, ResumeFailed) else exc.code
            metrics.RESUMES.labels(outcome).inc()
            log.info("resume on %s failed: %s", session.peer, exc.message)
            session.write_message(error_reply(request_id, exc.code, exc.message), fmt)
        finally:
            session.pending -= 1
            if not session.pending:
                session.idle()

    async def _take_local(self, session: GateSession, key: str, received: int) -> Resumable:
        r = self.takeable(key, received)
        await self._check(r)
        r = self.takeable(key, received)  # still: nothing ended it while the checks ran
        old = r.session
        if r.timer is not None:
            r.timer.cancel()
            r.timer = None
        r.attached = False
        self._bind(r, session, old.bound_us)
        old.sessions.discard(old)  # after the new one was added: the player's presence here goes on
        if not old.conn.closed:  # the client saw a drop the server did not
            old.close(CloseCode.NORMAL, RESUMED_REASON)
        return r

    def takeable(self, key: str, received: int) -> Resumable:
        """The live session ``key``, if ``received`` can resume it; raises ResumeFailed."""
        if self.stopping:
            raise ResumeFailed("lost", "the process that held the session is stopping")
        r = self.live.get(key)
        if r is None or r.forward is not None:
            raise self.gone(key)
        if received > r.seq:
            raise ResumeFailed("invalid", f"received {received} is beyond the last message sent ({r.seq})")
        if not r.ring.covers(received):
            self.drop(r, "overflow", "messages after the client's last one are no longer kept")
            raise self.gone(key)
        return r

    async def _check(self, r: Resumable) -> None:
        """Raises ResumeFailed ``banned`` / ``revoked`` (the session ends) if the player may not resume now."""
        if await self.banned(r.uid):
            self.drop(r, "banned", "the player is banned")
        elif r.claims is not None and not self.revocations.allows(r.claims):
            self.drop(r, "revoked", UNBOUND_SENTENCES["revoked"])
        if r.dropped is not None:
            raise self.gone(r.key)

    def _bind(self, r: Resumable, session: GateSession, bound_us: int) -> None:
        """Make ``session`` the session ``r`` (not yet written to: :meth:`_attach`)."""
        r.session = session
        session.adopt(r)
        session.bind(r.uid, r.claims)
        session.bound_us = bound_us

    def _attach(self, r: Resumable, session: GateSession, request_id: int, received: int, fmt: Format) -> None:
        """Answer the resume, then send what the client has not received, in order, then go on."""
        r.format = fmt
        r.ring.ack(received)
        kept = list(r.ring.after(received))
        session.write_message(ok_reply(request_id, {"uid": r.uid, "resume": self.info(r), "replayed": len(kept)}), fmt)
        for seq, source, data in kept:
            session.write_payload(_replayable(seq, data, source, fmt), fmt)
        metrics.REPLAYED.inc(len(kept))
        metrics.RESUMES.labels("ok").inc()
        if session.conn.closed:  # gone again while it was being resumed
            self.detach(r)
        else:
            r.attached = True
        log.info("uid %d: session resumed on %s, %d messages replayed", r.uid, session.peer, len(kept))

    # Hand-over (handover.py calls these) --------------------------------------------------------------------------

    def hand_over(self, r: Resumable, target: tuple[str, str]) -> None:
        """Another process took ``r`` (``target``: it and the route there): replies of the requests still running
        here go there; the old connection closes if it is still open, and stays bound until released."""
        r.forward = target
        if r.timer is not None:
            r.timer.cancel()
            r.timer = None
        self.live.pop(r.key, None)
        if r.attached:
            r.attached = False
            r.session.close(CloseCode.NORMAL, RESUMED_REASON)
        log.info("uid %d: session handed over to process %s", r.uid, target[0])

    def forward(self, r: Resumable, message: dict[str, Any]) -> None:
        assert r.forward is not None
        self.handover.forward(r.forward, message)


def _replayable(seq: int, data: bytes, source: Format, target: Format) -> bytes:
    """A kept message in the resumed connection's format; one with no such form (msgpack bytes for a JSON client)
    keeps its seq and says what it was."""
    try:
        return recode(data, source, target)
    except (TypeError, ValueError):
        log.warning("resume: message %d has no %s form", seq, target.value)
        stand_in = {"seq": seq, "event": "session.unsendable", "data": {}}
        return encode_msgpack(stand_in) if target is Format.MSGPACK else encode_json(stand_in).encode()
