"""The WebSocket listener (port 8881): ``/`` and ``/gate`` are the gate, ``/chat`` the chat edge.

A plain :class:`asyncio.Protocol` drives two sans-I/O objects: websockets' ``ServerProtocol`` for the
opening handshake (HTTP upgrade, RFC 6455 4.2; 426 with ``Sec-WebSocket-Version`` on a version mismatch),
then our :class:`~gameserver.protocol.websocket.WebSocketCodec` for the frames (masking, fragments,
ping/pong, the closing handshake, close codes 1002/1007/1009). websockets' own frame layer builds a
``Frame``, runs a parser generator and collects a list of writes per message; the codec parses a whole
frame in place, which more than halves the transport's cost per message (``docs/benchmarks.md``). After
the handshake, each whole message goes to the route's endpoint. Behind a proxy in ``http.trusted_proxies``,
the handshake's ``X-Forwarded-For`` gives the connection's ``remote`` (``gameserver/drivers/forwarded.py``).
"""

from __future__ import annotations

import http
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from websockets.http11 import Request
from websockets.server import ServerProtocol

from gameserver.drivers.forwarded import HEADER, client_address
from gameserver.drivers.listener import Connection, Listener
from gameserver.errors import CloseCode, ProtocolViolation
from gameserver.protocol.websocket import WebSocketCodec, encode_binary, encode_text

WS_VERSION = "13"
END_OF_HEAD = b"\r\n\r\n"  # a handshake request is a GET with no body: it ends with its head


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
        self.handshake: ServerProtocol | None = ServerProtocol(max_size=max(r.max_size for r in self.routes.values()))
        self.codec: WebSocketCodec | None = None  # set once the handshake succeeded
        self.endpoint: Endpoint | None = None
        self.path = ""
        self._tail = b""  # the last bytes of the request head so far, to find its end across reads

    def data_received(self, data: bytes) -> None:
        self.last_seen = self.loop.time()
        codec = self.codec
        if codec is None:
            self._handshake_data(data)
            return
        try:
            messages = codec.feed(data)
            endpoint = self.endpoint
            for message in messages:
                if self.closed:
                    break
                endpoint.receive(message)  # type: ignore[union-attr]  # set with the codec
        except ProtocolViolation as exc:
            self.violation(exc)
            return
        if codec.output or codec.done:
            self._flush_codec(codec)

    def _flush_codec(self, codec: WebSocketCodec) -> None:
        for frame in codec.output:
            self.write(frame)
        codec.output.clear()
        if codec.done and not self.closed:  # closing handshake over: the server closes TCP (RFC 6455, 7.1.1)
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def _handshake_data(self, data: bytes) -> None:
        ws = self.handshake
        if ws is None:  # refused: the response and the close are on their way
            return
        head = self._tail + data
        end = head.find(END_OF_HEAD)
        rest = b""
        if end >= 0:
            cut = end + len(END_OF_HEAD) - len(self._tail)
            data, rest = data[:cut], data[cut:]
        self._tail = head[-(len(END_OF_HEAD) - 1) :]
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Request):
                self._handshake(ws, event)
        self._flush_handshake(ws)
        if self.codec is not None and rest:
            self.data_received(rest)

    def _handshake(self, ws: ServerProtocol, request: Request) -> None:
        path = request.path.partition("?")[0]
        route = self.routes.get(path)
        version = request.headers.get("Sec-WebSocket-Version")
        if route is None:
            response = ws.reject(http.HTTPStatus.NOT_FOUND, f"No WebSocket endpoint at {path}.\n")
        elif version is not None and version != WS_VERSION:
            # RFC 6455, 4.4: answer an unsupported version with 426 and the versions we speak.
            response = ws.reject(http.HTTPStatus.UPGRADE_REQUIRED, f"Unsupported WebSocket version {version}.\n")
            response.headers["Sec-WebSocket-Version"] = WS_VERSION
        elif not self.count_as(self._forwarded_client(request)):
            response = ws.reject(http.HTTPStatus.SERVICE_UNAVAILABLE, "Too many connections from your address.\n")
        else:
            response = ws.accept(request)
        ws.send_response(response)
        if response.status_code == http.HTTPStatus.SWITCHING_PROTOCOLS and route is not None:
            self.path = path
            self.codec = WebSocketCodec(route.max_size)
            self.ready = True
            self.endpoint = route.factory(self)

    def _forwarded_client(self, request: Request) -> str:
        """The client's host: ``X-Forwarded-For``'s when the peer is a trusted proxy, else the peer's."""
        proxies = self.listener.context.get("trusted_proxies", ())
        return client_address(self.remote, request.headers.get_all(HEADER), proxies)

    def _flush_handshake(self, ws: ServerProtocol) -> None:
        for data in ws.data_to_send():
            if data:
                self.write(data)
            else:  # a refused handshake: close once the response is written
                self.closed = True
                if self.transport is not None:
                    self.transport.close()
        if self.codec is not None or self.closed:
            self.handshake = None  # done with it: frames are the codec's

    def eof_received(self) -> bool | None:
        return None  # the peer is gone without a closing handshake: close our side too

    def send_binary(self, data: bytes) -> None:
        codec = self.codec
        if codec is not None and not codec.close_sent and not self.closed:
            self.write(encode_binary(data))

    def send_text(self, text: str) -> None:
        codec = self.codec
        if codec is not None and not codec.close_sent and not self.closed:
            self.write(encode_text(text))

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Start the closing handshake; the client's close frame ends the connection."""
        if self.closed:
            return
        if self.codec is not None:
            frame = self.codec.close(code, reason)
            if frame:
                self.write(frame)
        elif self.transport is not None:  # still in the handshake: nothing to say goodbye with
            self.closed = True
            self.transport.close()

    def abort_with(self, code: CloseCode, reason: str) -> None:
        if self.codec is not None and not self.closed:
            frame = self.codec.fail(code, reason)
            if frame:
                self.write(frame)
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def shutdown(self) -> None:
        self.close(CloseCode.GOING_AWAY, "server shutting down")

    def on_close(self) -> None:
        if self.endpoint is not None:
            self.endpoint.closed()
