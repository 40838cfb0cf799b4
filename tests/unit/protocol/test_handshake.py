"""The opening handshake gives the answers websockets' ``ServerProtocol`` gives, request by request."""

from __future__ import annotations

import pytest
from websockets.http11 import Request as WsRequest
from websockets.server import ServerProtocol

from gameserver.protocol.handshake import MAX_HEADERS, MAX_LINE, HandshakeFramer, Request, accept_key

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
GOOD = [
    ("Host", "127.0.0.1:8881"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", KEY),
    ("Sec-WebSocket-Version", "13"),
]


def head(headers: list[tuple[str, str]], line: str = "GET /gate?x=1 HTTP/1.1") -> bytes:
    return ("\r\n".join([line] + [f"{name}: {value}" for name, value in headers]) + "\r\n\r\n").encode()


def without(name: str) -> list[tuple[str, str]]:
    return [(n, v) for n, v in GOOD if n != name]


def replaced(name: str, value: str) -> list[tuple[str, str]]:
    return [(n, value if n == name else v) for n, v in GOOD]


def ours(data: bytes) -> int | str:
    """Our answer: a status code, or "closed" (not HTTP: no answer) or "waiting" (no whole head yet)."""
    framer = HandshakeFramer(1024)
    requests = framer.feed(data)
    if framer.done:
        return "closed"
    if not requests:
        return "waiting"
    return framer.accept(requests[0]).status_code


def theirs(data: bytes) -> int | str:
    protocol = ServerProtocol()
    protocol.receive_data(data)
    requests = [event for event in protocol.events_received() if isinstance(event, WsRequest)]
    if not requests:
        return "closed" if protocol.data_to_send() else "waiting"
    return protocol.accept(requests[0]).status_code


CASES = {
    "valid": head(GOOD),
    "header names in any case": head([(n.lower(), v) for n, v in GOOD]),
    "tokens in any case": head(replaced("Upgrade", "WebSocket") + [("X", "y")]),
    "connection list": head(replaced("Connection", "keep-alive, Upgrade")),
    "connection over two lines": head(replaced("Connection", "keep-alive") + [("Connection", "upgrade")]),
    "plain GET": head([("Host", "x")]),
    "no Connection": head(without("Connection")),
    "Connection without upgrade": head(replaced("Connection", "keep-alive")),
    "no Upgrade": head(without("Upgrade")),
    "Upgrade other": head(replaced("Upgrade", "h2c")),
    "Upgrade two protocols": head(replaced("Upgrade", "websocket, h2c")),
    "no key": head(without("Sec-WebSocket-Key")),
    "short key": head(replaced("Sec-WebSocket-Key", "dGhlIHNhbXBsZQ==")),
    "key not base64": head(replaced("Sec-WebSocket-Key", "not base64 at all!!!!!!=")),
    "two keys": head(GOOD + [("Sec-WebSocket-Key", KEY)]),
    "no version": head(without("Sec-WebSocket-Version")),
    "version 8": head(replaced("Sec-WebSocket-Version", "8")),
    "POST": head(GOOD, "POST /gate HTTP/1.1"),
    "HTTP/1.0": head(GOOD, "GET /gate HTTP/1.0"),
    "no request line parts": head(GOOD, "GET"),
    "header without colon": head(GOOD + [("Bad header", "x")]).replace(b"Bad header: x", b"Bad header x"),
    "bad header name": head(GOOD + [("Bad header", "x")]),
    "control byte in value": head(GOOD + [("X", "a\x01b")]),
    "a body": head(GOOD + [("Content-Length", "3")]),
    "an empty body": head(GOOD + [("Content-Length", "0")]),
    "chunked": head(GOOD + [("Transfer-Encoding", "chunked")]),
    "a path not ASCII": head(GOOD, "GET /gäte HTTP/1.1"),
    "a value not ASCII": head(GOOD + [("X-Name", "gäte")]),
    "not HTTP": b"\x00\x01garbage\r\n\r\n",
    "a line too long": head(GOOD + [("X", "a" * MAX_LINE)]),
    "too many headers": head(GOOD + [(f"X{i}", "y") for i in range(MAX_HEADERS)]),
    "a line too long, no end yet": b"GET /" + b"a" * (MAX_LINE + 10),
    "a head not ended": head(GOOD)[:-2],
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_answer_is_websockets(name: str) -> None:
    assert ours(CASES[name]) == theirs(CASES[name])


def test_the_accept_key_is_rfc_6455s() -> None:
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 1.3's example


def test_the_101_names_the_accept_key_and_what_follows_the_head_is_kept() -> None:
    framer = HandshakeFramer(1024)
    data = head(GOOD) + b"\x82\x80frames"
    requests: list[Request] = []
    for i in range(len(data)):  # a byte at a time: the end of the head found across reads
        requests += framer.feed(data[i : i + 1])
        if requests:
            break
    [request] = requests
    assert request.path == "/gate?x=1" and request.header("sec-websocket-key") == KEY
    assert request.header_all("X-Forwarded-For") == [] and framer.rest == b""
    assert framer.accept(request).status_code == 101
    [response] = framer.data_to_send()
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n") and response.endswith(b"\r\n\r\n")
    assert b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in response
    assert framer.feed(b"more") == []  # one request per connection


def test_a_refusal_is_written_then_the_socket_closes() -> None:
    framer = HandshakeFramer(1024)
    [request] = framer.feed(head(replaced("Sec-WebSocket-Version", "7")))
    response = framer.reject(426, "Unsupported WebSocket version 7.\n", version=True)  # type: ignore[arg-type]
    assert ("Sec-WebSocket-Version", "13") in response.headers
    written, end = framer.data_to_send()
    assert written.startswith(b"HTTP/1.1 426 Upgrade Required\r\n") and written.endswith(b"version 7.\n")
    assert b"\r\nContent-Length: 33\r\n" in written and end == b""
