"""The gate: clients call functions over raw TCP (port 8880) or WebSocket (``/`` and ``/gate`` on 8881).

TCP frames are a 4-byte big-endian length and one msgpack map; over WebSocket a binary frame is one msgpack
map and a text frame one JSON object, answered in kind (PROTOCOL.md, "Listeners"). Both are a
:class:`~gameserver.drivers.connection.Connection` whose endpoint is a :class:`GateSession`: each decoded map
goes to ``submit`` (the bus: in one process, the dispatcher); replies come back through :meth:`GateSession.send`,
framed by the connection's framer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gameserver.bus.sessions import Session, Sessions
from gameserver.drivers.connection import Connection, Driver
from gameserver.errors import ProtocolViolation
from gameserver.protocol.codec import Format, decode_json, decode_msgpack, encode_json, encode_msgpack
from gameserver.protocol.frames import LengthPrefixFramer
from gameserver.ratelimit import TokenBucket

if TYPE_CHECKING:
    from gameserver.features.identity.tokens import Claims
    from gameserver.features.resume.hub import Resumption
    from gameserver.features.resume.state import Resumable

RESUME_FN = "session.resume"  # answered by the gate process itself, as the first request of a connection
ACK_FN = "session.ack"  # on a resumable connection, answered by the gate process itself

Submit = Callable[[dict[str, Any], Session, Format], None]

# Enum members read from module globals: ``Format.MSGPACK`` costs ~70 ns a lookup on Python 3.11.
MSGPACK = Format.MSGPACK
JSON = Format.JSON


@dataclass(frozen=True, slots=True)
class GateContext:
    """What a gate connection needs: where requests go and where bound sessions are kept.

    Args:
        submit: the bus's seam (``Bus.submit``): takes each request with the session its reply goes back through.
        sessions: this process's bound sessions (pushes find a player's connections there).
        rate: requests a second per connection (``gate.rate``), ``burst`` saved up.
        resume: this process's resumable sessions (docs/PROTOCOL.md, "Resume"); None: no ``session.resume``.
    """

    submit: Submit
    sessions: Sessions
    rate: float
    burst: int
    resume: Resumption | None = None


class GateSession(Session):
    """The gate endpoint of a connection, raw TCP or WebSocket: decoded maps in, replies out.

    A connection whose login asked for resume hands its messages to its :class:`Resumable` (``resume``), which
    numbers, keeps and writes them (gameserver/features/resume/); the others pay one attribute check in
    :meth:`send`. While a gate has resumable sessions, a connection's first request goes through :meth:`_first`
    (``session.resume``), a resumable one's through :meth:`_resumable` (``session.ack``); then ``submit`` is the
    bus's again.
    """

    __slots__ = ("conn", "submit", "context", "resume", "_binary", "_text")

    def __init__(self, conn: Connection, gate: GateContext) -> None:
        super().__init__(gate.sessions, TokenBucket(gate.rate, gate.burst, conn.loop.time()))
        self.conn = conn
        self.context = gate
        self.resume: Resumable | None = None
        self.submit = gate.submit if gate.resume is None else self._first
        framer = conn.framer
        self._binary = framer.binary
        self._text = framer.text

    @property
    def peer(self) -> str:
        return self.conn.peer

    @property
    def remote(self) -> str:
        return self.conn.remote

    def receive(self, message: bytes | str) -> None:
        if type(message) is bytes:
            self.push_format = MSGPACK
            self.submit(decode_msgpack(message), self, MSGPACK)
        else:
            self.push_format = JSON
            self.submit(decode_json(message), self, JSON)

    def send(self, message: dict[str, Any], fmt: Format) -> None:
        resume = self.resume
        if resume is not None:
            resume.send(self, message, fmt)
        elif fmt is MSGPACK:
            self.conn.write(self._binary(encode_msgpack(message)))
        else:
            self.conn.write(self._text(encode_json(message).encode()))

    def write_message(self, message: dict[str, Any], fmt: Format) -> None:
        """Write ``message`` as it is, unnumbered even on a resumable connection (the reply to ``session.resume``)."""
        if fmt is MSGPACK:
            self.conn.write(self._binary(encode_msgpack(message)))
        else:
            self.conn.write(self._text(encode_json(message).encode()))

    def write_payload(self, data: bytes, fmt: Format) -> None:
        """Write one map already encoded in ``fmt``."""
        self.conn.write(self._binary(data) if fmt is MSGPACK else self._text(data))

    def violate(self, exc: ProtocolViolation) -> None:
        self.conn.violation(exc)

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self.resume is not None:
            self.resume.closing(self, reason)
        self.conn.close(code, reason)

    def is_open(self) -> bool:
        """A resumable session is open while it lasts: a dropped connection's replies and pushes are kept."""
        return not self.conn.closed or self.resume is not None

    def idle(self) -> None:
        self.conn.idle()

    def closed(self) -> None:
        if self.context.resume is not None:
            self.submit = self.context.submit  # no cycle through a bound method left behind
        if self.resume is not None:
            self.resume.closed(self)
        else:
            self.sessions.discard(self)

    def bind(self, uid: int, claims: Claims | None = None) -> None:
        resume = self.resume
        if resume is not None:
            if resume.session is not self:  # a login that ends on a connection the session left: it stays left
                return
            if resume.uid != uid:  # logged in as someone else: the session is not theirs
                resume.unbound(self)
        super().bind(uid, claims)

    def unbind(self) -> None:
        if self.resume is not None:
            self.resume.unbound(self)
        super().unbind()

    # Resume (gameserver/features/resume/) -----------------------------------------------------------------------

    def resumable(self) -> dict[str, Any] | None:
        resume = self.context.resume
        return None if resume is None else resume.enable(self)

    def adopt(self, resume: Resumable) -> None:
        """This connection is now the resumable session ``resume``."""
        self.resume = resume
        if not self.conn.closed:
            self.submit = self._resumable

    def abandon(self) -> None:
        """The resumable session ended: plain messages from now on."""
        self.resume = None
        self.submit = self.context.submit

    def _first(self, message: dict[str, Any], session: Session, fmt: Format) -> None:
        resume = self.context.resume
        self.submit = self.context.submit
        if resume is not None and message.get("fn") == RESUME_FN:
            resume.start_resume(self, message, fmt)
        else:
            self.submit(message, session, fmt)

    def _resumable(self, message: dict[str, Any], session: Session, fmt: Format) -> None:
        resume = self.context.resume
        if resume is not None and message.get("fn") == ACK_FN:
            resume.ack(self, message, fmt)
        else:
            self.context.submit(message, session, fmt)


def gate_driver(gate: GateContext, max_frame: int) -> Driver:
    """The raw TCP gate's driver (``gate.tcp_port``): length-prefixed msgpack both ways."""

    def session(conn: Connection) -> GateSession:
        return GateSession(conn, gate)

    return Driver(lambda: LengthPrefixFramer(max_frame), session)


def gate_endpoint(gate: GateContext) -> Callable[[Connection], GateSession]:
    """The gate's WebSocket endpoint (``/``, ``/gate``)."""

    def session(conn: Connection) -> GateSession:
        return GateSession(conn, gate)

    return session
