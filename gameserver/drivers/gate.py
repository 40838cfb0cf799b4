"""The gate: clients call functions over raw TCP (port 8880) or WebSocket (``/`` and ``/gate`` on 8881).

TCP frames are a 4-byte big-endian length and one msgpack map; over WebSocket a binary frame is one msgpack
map and a text frame one JSON object, answered in kind (PROTOCOL.md, "Listeners"). Each decoded map goes to
``submit`` (the bus: in-process, the dispatcher); replies come back through :meth:`Session.send`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gameserver.bus.sessions import Session
from gameserver.drivers.listener import Connection, Listener
from gameserver.errors import ProtocolViolation
from gameserver.protocol.codec import Format, decode_json, decode_msgpack, encode_json, encode_msgpack
from gameserver.protocol.frames import FrameDecoder, encode_frame
from gameserver.ratelimit import TokenBucket

Submit = Callable[[dict[str, Any], Session, Format], None]

# Enum members read from module globals: ``Format.MSGPACK`` costs ~70 ns a lookup on Python 3.11.
MSGPACK = Format.MSGPACK
JSON = Format.JSON


def _bucket(listener: Listener) -> TokenBucket:
    gate = listener.context["config"].gate
    return TokenBucket(gate.rate, gate.burst, listener.loop.time())


class TcpGateConnection(Connection, Session):
    """One raw TCP gate client: length-prefixed msgpack in, length-prefixed msgpack out."""

    kind = "tcp"

    def __init__(self, listener: Listener) -> None:
        Connection.__init__(self, listener)
        Session.__init__(self, listener.context["sessions"], _bucket(listener))
        self.ready = True  # no handshake on raw TCP
        self.decoder = FrameDecoder(listener.context["config"].gate.max_frame)
        self.submit: Submit = listener.context["submit"]
        self.eof = False  # the client shut its sending side; we close once its requests are answered

    def data_received(self, data: bytes) -> None:
        self.last_seen = self.loop.time()
        try:
            for payload in self.decoder.feed(data):
                if self.closed:
                    return
                self.submit(decode_msgpack(payload), self, MSGPACK)
        except ProtocolViolation as exc:
            self.violation(exc)

    def eof_received(self) -> bool:
        # A client may send its requests and shut its side (as `nc` does at end of input): answer them first.
        self.eof = True
        if self.pending:
            return True  # keep the socket open for the replies; idle() closes it
        return False

    def idle(self) -> None:
        if self.eof:
            self.shutdown()

    def is_open(self) -> bool:
        return not self.closed

    def send(self, message: dict[str, Any], fmt: Format) -> None:
        self.write(encode_frame(encode_msgpack(message)))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.shutdown()

    def on_close(self) -> None:
        self.sessions.discard(self)


class WsGateSession(Session):
    """The gate endpoint of a WebSocket connection (see ``websocket.py`` for the transport)."""

    kind = "ws"

    def __init__(self, conn: Any) -> None:
        listener: Listener = conn.listener
        super().__init__(listener.context["sessions"], _bucket(listener))
        self.conn = conn
        self.peer = conn.peer
        self.remote = conn.remote
        self.submit: Submit = listener.context["submit"]

    def receive(self, message: bytes | str) -> None:
        if isinstance(message, str):
            self.push_format = JSON
            self.submit(decode_json(message), self, JSON)
        else:
            self.push_format = MSGPACK
            self.submit(decode_msgpack(message), self, MSGPACK)

    def send(self, message: dict[str, Any], fmt: Format) -> None:
        if fmt is MSGPACK:
            self.conn.send_binary(encode_msgpack(message))
        else:
            self.conn.send_text(encode_json(message))

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.conn.close(code, reason)

    def is_open(self) -> bool:
        return not self.conn.closed

    def closed(self) -> None:
        self.sessions.discard(self)
