"""The WebSocket listener (port 8881): ``/`` and ``/gate`` are the gate, ``/chat`` the chat edge.

websockets' sans-I/O :class:`~websockets.server.ServerProtocol` does the RFC 6455 work (handshake,
framing, masking, control frames, close codes, the size limit as close 1009); this driver feeds it bytes
from a plain :class:`asyncio.Protocol` and writes what it produces, which costs far less per message than
the library's own asyncio server. After the handshake, each whole message goes to the route's endpoint.
"""

from __future__ import annotations

import http
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from gameserver.errors import CloseCode, ProtocolViolation
from gameserver.listener import Connection, Listener

WS_VERSION = "13"


class Endpoint(Protocol):
    """What serves a WebSocket path once the handshake is done (gate session, chat client)."""

    def receive(self, message: bytes | str) -> None:
        """One whole message; raise :class:`ProtocolViolation` to close the connection."""

    def closed(self) -> None:
        """The connection is gone."""


@dataclass(frozen=True, slots=True)
class Route:
    factory: Callable[[WebSocketConnection], Endpoint]
    max_size: int


class WebSocketConnection(Connection):
    def __init__(self, listener: Listener) -> None:
        super().__init__(listener)
        self.routes: dict[str, Route] = listener.context["ws_routes"]
        self.ws = ServerProtocol(max_size=max(route.max_size for route in self.routes.values()))
        self.endpoint: Endpoint | None = None
        self.path = ""
        self._fragments: list[bytes] = []
        self._fragment_opcode = Opcode.BINARY

    def data_received(self, data: bytes) -> None:
        self.last_seen = self.loop.time()
        ws = self.ws
        ws.receive_data(data)
        try:
            for event in ws.events_received():
                if isinstance(event, Frame):
                    self._frame(event)
                elif isinstance(event, Request):
                    self._handshake(event)
        except ProtocolViolation as exc:
            self.violation(exc)
        self.flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self.flush()
        return None

    def _handshake(self, request: Request) -> None:
        ws = self.ws
        path = request.path.partition("?")[0]
        route = self.routes.get(path)
        version = request.headers.get("Sec-WebSocket-Version")
        if route is None:
            response = ws.reject(http.HTTPStatus.NOT_FOUND, f"No WebSocket endpoint at {path}.\n")
        elif version is not None and version != WS_VERSION:
            # RFC 6455, 4.4: answer an unsupported version with 426 and the versions we speak.
            response = ws.reject(http.HTTPStatus.UPGRADE_REQUIRED, f"Unsupported WebSocket version {version}.\n")
            response.headers["Sec-WebSocket-Version"] = WS_VERSION
        else:
            response = ws.accept(request)
        ws.send_response(response)
        if response.status_code == 101 and route is not None:
            self.path = path
            ws.max_message_size = route.max_size
            self.ready = True
            self.endpoint = route.factory(self)

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if not frame.fin:
                self._fragment_opcode = opcode
                self._fragments = [bytes(frame.data)]
                return
            payload = bytes(frame.data)
        elif opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if not frame.fin:
                return
            opcode = self._fragment_opcode
            payload = b"".join(self._fragments)
            self._fragments = []
        else:
            return  # ping, pong, close: the protocol object already answered
        if self.endpoint is None or self.closed:
            return
        if opcode is Opcode.TEXT:
            try:
                text = payload.decode()
            except UnicodeDecodeError:
                raise ProtocolViolation(CloseCode.INVALID_DATA, "text frame is not UTF-8") from None
            self.endpoint.receive(text)
        else:
            self.endpoint.receive(payload)

    def flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for data in self.ws.data_to_send():
            if data:
                if not transport.is_closing():
                    transport.write(data)
            else:  # end of stream: the server closes the TCP connection (RFC 6455, 7.1.1)
                self.closed = True
                transport.close()

    def send_binary(self, data: bytes) -> None:
        if not self.closed:
            self.ws.send_binary(data)
            self.flush()

    def send_text(self, text: str) -> None:
        if not self.closed:
            self.ws.send_text(text.encode())
            self.flush()

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        if not self.closed and self.ready and self.ws.state.name == "OPEN":
            self.ws.send_close(code, reason)
            self.flush()
        elif self.transport is not None and not self.ready:
            self.closed = True
            self.transport.close()

    def abort_with(self, code: CloseCode, reason: str) -> None:
        if self.ready and self.ws.state.name == "OPEN":
            self.ws.fail(code, reason[:120])
            self.flush()
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def shutdown(self) -> None:
        self.close(CloseCode.GOING_AWAY, "server shutting down")
        if not self.ready:
            self.closed = True

    def on_close(self) -> None:
        if self.endpoint is not None:
            self.endpoint.closed()
