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
from typing import Any

from gameserver.bus.sessions import Session, Sessions
from gameserver.drivers.connection import Connection, Driver
from gameserver.errors import ProtocolViolation
from gameserver.protocol.codec import Format, decode_json, decode_msgpack, encode_json, encode_msgpack
from gameserver.protocol.frames import LengthPrefixFramer
from gameserver.ratelimit import TokenBucket

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
    """

    submit: Submit
    sessions: Sessions
    rate: float
    burst: int


class GateSession(Session):
    """The gate endpoint of a connection, raw TCP or WebSocket: decoded maps in, replies out."""

    __slots__ = ("conn", "submit", "_binary", "_text")

    def __init__(self, conn: Connection, gate: GateContext) -> None:
        super().__init__(gate.sessions, TokenBucket(gate.rate, gate.burst, conn.loop.time()))
        self.conn = conn
        self.submit = gate.submit
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
        if fmt is MSGPACK:
            self.conn.write(self._binary(encode_msgpack(message)))
        else:
            self.conn.write(self._text(encode_json(message).encode()))

    def violate(self, exc: ProtocolViolation) -> None:
        self.conn.violation(exc)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.conn.close(code, reason)

    def is_open(self) -> bool:
        return not self.conn.closed

    def idle(self) -> None:
        self.conn.idle()

    def closed(self) -> None:
        self.sessions.discard(self)


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
