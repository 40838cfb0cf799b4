"""The WebSocket opening handshake as a framer phase (RFC 6455, 4.2): websockets' sans-I/O ``ServerProtocol``.

Until the upgrade, a WebSocket connection's framer is a :class:`HandshakeFramer`: its one message is the
upgrade :class:`~websockets.http11.Request`. The connection's endpoint then answers it (:meth:`accept` or
:meth:`reject`), writes :meth:`data_to_send`, and on success swaps in a
:class:`~gameserver.protocol.websocket.WebSocketCodec` fed with :attr:`rest`, the bytes that followed the head.
"""

from __future__ import annotations

import http

from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from gameserver.protocol.framing import Wire

WS_VERSION = "13"
END_OF_HEAD = b"\r\n\r\n"  # a handshake request is a GET with no body: it ends with its head


class HandshakeFramer:
    """The handshake phase of a WebSocket connection.

    Args:
        max_size: the largest message any route takes (websockets checks nothing else with it here).
    """

    __slots__ = ("protocol", "rest", "_tail", "output", "done")

    wire = Wire.WEBSOCKET
    half_close = False

    def __init__(self, max_size: int) -> None:
        self.protocol = ServerProtocol(max_size=max_size)
        self.rest = b""  # what came after the request head: the first frames, for the codec
        self._tail = b""  # the last bytes of the request head so far, to find its end across reads
        self.output: list[bytes] = []  # the error response to a request that is not one (websockets' 400)
        self.done = False  # ... after which the socket closes

    def feed(self, data: bytes) -> list[Request]:
        head = self._tail + data
        end = head.find(END_OF_HEAD)
        if end >= 0:
            cut = end + len(END_OF_HEAD) - len(self._tail)
            data, self.rest = data[:cut], data[cut:]
        self._tail = head[-(len(END_OF_HEAD) - 1) :]
        ws = self.protocol
        ws.receive_data(data)
        requests = [event for event in ws.events_received() if isinstance(event, Request)]
        if not requests:  # not HTTP, or a head over websockets' limits: its error response, then close
            for chunk in ws.data_to_send():
                if chunk:
                    self.output.append(chunk)
                else:
                    self.done = True
        return requests

    def accept(self, request: Request) -> Response:
        response = self.protocol.accept(request)
        self.protocol.send_response(response)
        return response

    def reject(self, status: http.HTTPStatus, text: str, version: bool = False) -> Response:
        """Refuse the upgrade; ``version``: name the version we speak (426, RFC 6455 4.4)."""
        response = self.protocol.reject(status, text)
        if version:
            response.headers["Sec-WebSocket-Version"] = WS_VERSION
        self.protocol.send_response(response)
        return response

    def data_to_send(self) -> list[bytes]:
        """Bytes to write; an empty item means: close the socket once the rest is written."""
        return self.protocol.data_to_send()

    def buffered(self) -> int:
        return 0  # the handshake timeout covers the request head

    def binary(self, payload: bytes) -> bytes:
        return b""  # nothing but the response before the upgrade

    text = binary

    def closing(self, code: int, reason: str) -> bytes | None:
        return None

    def failing(self, code: int, reason: str) -> bytes:
        return b""
