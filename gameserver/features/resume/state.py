"""One resumable session (docs/PROTOCOL.md, "Resume"): its numbering, what it keeps, and where it is now.

The gate connection that asked for it (:class:`~gameserver.drivers.gate.GateSession`) hands every message to
:meth:`Resumable.send` instead of writing it: it is numbered (``seq``), kept in the :class:`Ring` until the client
acknowledges it, and written while a connection is attached. When the connection drops, the session stays bound
(presence, pushes) and keeps what it is sent, within the ring's bounds, for ``session.resume_grace`` seconds; the
:class:`~gameserver.features.resume.hub.Resumption` decides its fate.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from gameserver.features.identity.revocations import REVOKED_REASON
from gameserver.features.identity.single import REPLACED_REASON
from gameserver.features.identity.tokens import Claims
from gameserver.features.resume.ring import Ring, encode
from gameserver.protocol.codec import Format

if TYPE_CHECKING:
    from gameserver.drivers.gate import GateSession
    from gameserver.features.resume.hub import Resumption

# Why a connection bound to a resumable session was unbound, by the reason it was closed with right before.
UNBOUND_REASONS = {REVOKED_REASON: "revoked", REPLACED_REASON: "replaced"}
CLOSED_SENTENCE = "the client closed the connection (WebSocket close code 1000)"
UNBOUND_SENTENCES = {
    "revoked": "the player's tokens were revoked",
    "replaced": "another login took the player's session, or the player logged out",
}


class Resumable:
    """The state of one resumable session.

    Attributes:
        key: its name in the token (unique in its process).
        session: the gate connection that is the session now (attached, or dropped and waiting); connections it
            was resumed from keep pointing here, so that their requests' replies arrive.
        format: of the attached connection (of its login or resume): what replies of older connections and
            forwarded messages are encoded in.
        attached: ``session``'s connection is open and written to.
        dropped: the reason it ended (then it sends nothing), or None.
        forward: ``(process, route)`` once another gate process took it over: replies of the requests still
            running here go there.
    """

    __slots__ = (
        "hub", "key", "uid", "claims", "seq", "ring", "session", "format", "attached", "timer", "dropped",
        "forward", "close_reason",
    )  # fmt: skip

    def __init__(
        self,
        hub: Resumption,
        key: str,
        session: GateSession,
        uid: int,
        claims: Claims | None,
        fmt: Format,
        ring: Ring,
        seq: int = 0,
    ) -> None:
        self.hub = hub
        self.key = key
        self.session = session
        self.uid = uid
        self.claims = claims
        self.format = fmt
        self.ring = ring
        self.seq = seq  # of the last message sent
        self.attached = False
        self.timer: asyncio.TimerHandle | None = None  # the grace (or, handed over, the release)
        self.dropped: str | None = None
        self.forward: tuple[str, str] | None = None
        self.close_reason = ""

    def send(self, origin: GateSession | None, message: dict[str, Any], fmt: Format) -> None:
        """Number, keep and (attached) write one message from ``origin`` (a connection of this session, or None
        for one forwarded from another process). Raises TypeError/ValueError if it has no wire form."""
        if self.forward is not None:
            if "id" in message:  # a reply; the player's pushes reach the new process by uid
                self.hub.forward(self, message)
            return
        if self.dropped is not None:
            return
        if origin is not self.session:
            fmt = self.format
        seq = self.seq + 1
        data = encode({**message, "seq": seq}, fmt)
        self.seq = seq
        fits = self.ring.add(seq, fmt, data)
        if self.attached:
            self.session.write_payload(data, fmt)
            if not fits:
                self.ring.evict()
        elif not fits:
            self.hub.drop(self, "overflow", "more messages were sent while the client was away than the buffer holds")

    def closed(self, session: GateSession) -> None:
        """``session``'s connection is gone."""
        if self.forward is not None:
            return  # handed over: the hand-over unbinds it
        if session is self.session and self.dropped is None:
            if session.conn.framer.left:  # the client said goodbye (WebSocket close 1000): nothing to wait for
                self.hub.drop(self, "closed", CLOSED_SENTENCE)
                session.sessions.discard(session)
                return
            self.hub.detach(self)
        else:  # a connection this session was resumed from
            session.sessions.discard(session)

    def closing(self, session: GateSession, reason: str) -> None:
        if session is self.session:
            self.close_reason = reason

    def unbound(self, session: GateSession) -> None:
        """``session`` is being unbound (logout, another login, a revocation): the session ends."""
        if session is self.session and self.dropped is None and self.forward is None:
            reason = UNBOUND_REASONS.get(self.close_reason, "replaced")
            self.hub.drop(self, reason, UNBOUND_SENTENCES[reason])
