"""The WebSocket opening handshake as a framer phase (RFC 6455, 4.2), sans I/O.

Until the upgrade, a WebSocket connection's framer is a :class:`HandshakeFramer`: its one message is the
upgrade :class:`Request`. The connection's endpoint then answers it (:meth:`~HandshakeFramer.accept` or
:meth:`~HandshakeFramer.reject`), writes :meth:`~HandshakeFramer.data_to_send`, and on success swaps in a
:class:`~gameserver.protocol.websocket.WebSocketCodec` fed with :attr:`~HandshakeFramer.rest`, the bytes that
followed the head.

The checks and answers are websockets' ``ServerProtocol``'s (its limits on the head, its HTTP grammar,
closing on bytes that are no HTTP request, 405, 505, 400 for a bad key or version, 426 with ``Upgrade:
websocket`` for a request that is not an upgrade), done in one pass over the head: after a restart every
player reconnects at once, and websockets' general HTTP parser cost several times what the rest of answering
the handshake does (``docs/benchmarks.md``). No extension, subprotocol or origin is negotiated, as before.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import http
import re
import time
from dataclasses import dataclass, field

from gameserver.protocol.framing import Wire

WS_VERSION = "13"
END_OF_HEAD = b"\r\n\r\n"  # a handshake request is a GET with no body: it ends with its head
CRLF = b"\r\n"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3
MAX_LINE = 8192  # websockets' limits on a request head: bytes in one line, header lines
MAX_HEADERS = 128
KEY_BYTES = 16  # Sec-WebSocket-Key: 16 random bytes in base64 (4.1)

# A header line (RFC 7230 3.2): a token, a colon, the value between optional whitespace (obs-text allowed).
_HEADER = re.compile(rb"([-!#$%&\'*+.^_`|~0-9a-zA-Z]+):[ \t]*([\x09\x20-\x7e\x80-\xff]*?)[ \t]*")
_STR_TOKEN = re.compile(r"[-!#$%&\'*+.^_`|~0-9a-zA-Z]+")
_PROTOCOL = re.compile(r"[-!#$%&\'*+.^_`|~0-9a-zA-Z]+(?:/[-!#$%&\'*+.^_`|~0-9a-zA-Z]+)?")  # Upgrade: name[/version]


class BadHead(ValueError):
    """The bytes are not an HTTP/1.1 GET request head within the limits: 400, then close."""


@dataclass(slots=True)
class Request:
    """An upgrade request: its path (with the query) and its headers, names lowercased, values in order."""

    path: str
    headers: dict[str, list[str]]
    method: str = "GET"
    protocol: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        """The header's only value; None if it is absent (several values: the first)."""
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        return self.headers.get(name.lower(), [])


@dataclass(slots=True)
class Response:
    status_code: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def parse_head(head: bytes) -> Request:
    """A request head without its final blank line: the request line and the header lines."""
    lines = head.split(CRLF)
    if len(lines) > MAX_HEADERS + 1:
        raise BadHead("too many HTTP headers")
    try:
        method, path, protocol = lines[0].split(b" ", 2)
    except ValueError:
        raise BadHead("invalid HTTP request line") from None
    if protocol != b"HTTP/1.1" and protocol != b"HTTP/1.0":  # 1.0 is parsed, then answered 505
        raise BadHead("unsupported protocol")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        match = _HEADER.fullmatch(line)
        if match is None:
            raise BadHead("invalid HTTP header line")
        name, value = match.groups()
        headers.setdefault(name.decode("ascii").lower(), []).append(value.decode("latin-1"))
    if "transfer-encoding" in headers or headers.get("content-length", ["0"]) != ["0"]:
        raise BadHead("unsupported request body")
    return Request(path.decode("ascii"), headers, method.decode("ascii"), protocol.decode("ascii"))


def tokens(values: list[str], grammar: re.Pattern[str]) -> list[str] | None:
    """A comma-separated header list (RFC 7230 7) across its lines; None if an item breaks ``grammar``."""
    found = []
    for value in values:
        for item in value.split(","):
            item = item.strip(" \t")
            if item:
                if not grammar.fullmatch(item):
                    return None
                found.append(item)
    return found


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


class _Clock:
    """The Date header, formatted once a second rather than once a response."""

    __slots__ = ("second", "text")

    def __init__(self) -> None:
        self.second = -1
        self.text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self.second:
            self.second, self.text = second, email.utils.formatdate(second, usegmt=True)
        return self.text


DATE = _Clock()


def serialize(response: Response) -> bytes:
    status = http.HTTPStatus(response.status_code)
    lines = [f"HTTP/1.1 {status.value} {status.phrase}"]
    lines += [f"{name}: {value}" for name, value in response.headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


class HandshakeFramer:
    """The handshake phase of a WebSocket connection.

    Args:
        max_size: the largest message any route takes (not used before the upgrade; the codec takes it).
    """

    __slots__ = ("_head", "rest", "output", "done")  # an idle connection waiting for its upgrade holds these

    wire = Wire.WEBSOCKET
    half_close = False
    left = False

    def __init__(self, max_size: int) -> None:
        self._head: bytes | None = b""  # the request head so far; None once it has ended
        self.rest = b""  # what came after the request head: the first frames, for the codec
        self.output: list[bytes] = []  # the response; after a refusal, b"" (then close)
        self.done = False  # not an HTTP request: the socket closes

    def feed(self, data: bytes) -> list[Request]:
        if self._head is None:
            return []  # one request per connection; what follows its head is the codec's
        head = self._head + data if self._head else data
        end = head.find(END_OF_HEAD)
        if end < 0:
            start = head.rfind(CRLF) + 2 if CRLF in head else 0
            if len(head) - start > MAX_LINE or head.count(CRLF) > MAX_HEADERS + 1:
                self._refuse_malformed()
            else:
                self._head = head
            return []
        self._head = None
        self.rest = head[end + len(END_OF_HEAD) :]
        try:
            if any(len(line) > MAX_LINE for line in head[:end].split(CRLF)):
                raise BadHead("line too long")
            return [parse_head(head[:end])]
        except (BadHead, UnicodeDecodeError):
            self._refuse_malformed()
            return []

    def _refuse_malformed(self) -> None:
        """websockets' answer to what is not an HTTP request: none, the socket closes (``done``)."""
        self._head = None
        self.done = True

    def accept(self, request: Request) -> Response:
        """Check the upgrade (websockets' order and answers); 101 with the accept key, or the refusal."""
        headers = request.headers
        connection = tokens(headers.get("connection", []), _STR_TOKEN)
        upgrade = tokens(headers.get("upgrade", []), _PROTOCOL)
        keys = headers.get("sec-websocket-key", [])
        versions = headers.get("sec-websocket-version", [])
        if request.method != "GET":
            response = self._refusal(
                http.HTTPStatus.METHOD_NOT_ALLOWED, f"invalid HTTP method; expected GET; got {request.method}"
            )
            response.headers.append(("Allow", "GET"))
        elif request.protocol != "HTTP/1.1":
            response = self._refusal(
                http.HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "invalid HTTP version; expected HTTP/1.1"
            )
        elif connection is None or upgrade is None:
            response = self._refusal(http.HTTPStatus.BAD_REQUEST, "invalid Connection or Upgrade header")
        elif not any(item.lower() == "upgrade" for item in connection):
            response = self._refusal(http.HTTPStatus.UPGRADE_REQUIRED, "invalid Connection header", upgrade=True)
        elif not (len(upgrade) == 1 and upgrade[0].lower() == "websocket"):
            response = self._refusal(http.HTTPStatus.UPGRADE_REQUIRED, "invalid Upgrade header", upgrade=True)
        elif len(keys) != 1 or not _valid_key(keys[0]):
            response = self._refusal(http.HTTPStatus.BAD_REQUEST, "missing or invalid Sec-WebSocket-Key header")
        elif versions != [WS_VERSION]:
            response = self._refusal(http.HTTPStatus.BAD_REQUEST, "missing or invalid Sec-WebSocket-Version header")
        else:
            response = Response(
                http.HTTPStatus.SWITCHING_PROTOCOLS,
                [
                    ("Date", DATE.now()),
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Accept", accept_key(keys[0])),
                ],
            )
        self._send(response)
        return response

    def reject(self, status: http.HTTPStatus, text: str, version: bool = False) -> Response:
        """Refuse the upgrade; ``version``: name the version we speak (426, RFC 6455 4.4)."""
        response = _text_response(status, text)
        if version:
            response.headers.append(("Sec-WebSocket-Version", WS_VERSION))
        self._send(response)
        return response

    @staticmethod
    def _refusal(status: http.HTTPStatus, why: str, upgrade: bool = False) -> Response:
        text = f"Failed to open a WebSocket connection: {why}.\n"
        if upgrade:
            text += "\nYou cannot access a WebSocket server directly with a browser. You need a WebSocket client.\n"
        response = _text_response(status, text)
        if upgrade:
            response.headers.append(("Upgrade", "websocket"))
        return response

    def _send(self, response: Response) -> None:
        self.output.append(serialize(response))
        if response.status_code != http.HTTPStatus.SWITCHING_PROTOCOLS:
            self.output.append(b"")  # a refusal: close once it is written

    def data_to_send(self) -> list[bytes]:
        """Bytes to write; an empty item means: close the socket once the rest is written."""
        output, self.output = self.output, []
        return output

    def buffered(self) -> int:
        return 0  # the handshake timeout covers the request head

    def binary(self, payload: bytes) -> bytes:
        return b""  # nothing but the response before the upgrade

    text = binary

    def closing(self, code: int, reason: str) -> bytes | None:
        return None

    def failing(self, code: int, reason: str) -> bytes:
        return b""


def _valid_key(key: str) -> bool:
    try:
        return len(base64.b64decode(key.encode("ascii"), validate=True)) == KEY_BYTES
    except (binascii.Error, UnicodeEncodeError):
        return False


def _text_response(status: http.HTTPStatus, text: str) -> Response:
    body = text.encode()
    headers = [
        ("Date", DATE.now()),
        ("Connection", "close"),
        ("Content-Length", str(len(body))),
        ("Content-Type", "text/plain; charset=utf-8"),
    ]
    return Response(status, headers, body)
