"""The WebSocket opening handshake (RFC 6455, 4; PROTOCOL.md: failures follow the RFC)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gameserver.app import App
from tests.clients import TcpClient, WsClient

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


async def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send a raw HTTP request; the response's status, headers (lower-case names) and body, up to the close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    async with asyncio.timeout(5):
        data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def upgrade(path: str = "/gate", version: str = "13") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: {version}\r\n\r\n"
    ).encode()


async def test_upgrade_is_accepted(app: App) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", app.ports["ws"])
    writer.write(upgrade())
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head  # RFC 6455, 1.3
    writer.close()


async def test_version_mismatch_is_426_with_the_supported_version(app: App) -> None:
    status, headers, _ = await exchange(app.ports["ws"], upgrade(version="8"))
    assert status == 426
    assert headers["sec-websocket-version"] == "13"


async def test_unknown_path_is_404(app: App) -> None:
    status, _, body = await exchange(app.ports["ws"], upgrade(path="/nope"))
    assert status == 404
    assert body == b"No WebSocket endpoint at /nope.\n"


async def test_query_string_is_ignored_for_routing(app: App) -> None:
    client = await WsClient.open(app.ports["ws"], "/gate?v=1")
    assert (await client.call("sys.echo"))["ok"] is True
    await client.close()


async def test_plain_http_get_is_426(app: App) -> None:
    status, headers, _ = await exchange(app.ports["ws"], b"GET /gate HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status == 426
    assert headers["upgrade"].lower() == "websocket"


async def test_missing_key_is_400(app: App) -> None:
    request = upgrade().replace(f"Sec-WebSocket-Key: {KEY}\r\n".encode(), b"")
    status, _, _ = await exchange(app.ports["ws"], request)
    assert status == 400


async def test_not_http_at_all_is_closed(app: App) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", app.ports["ws"])
    writer.write(b"\x00\x01garbage\r\n\r\n")
    async with asyncio.timeout(5):
        assert await reader.read() == b""
    writer.close()


async def test_a_failed_handshake_leaves_other_connections_working(app: App) -> None:
    client = await WsClient.open(app.ports["ws"])
    status, _, _ = await exchange(app.ports["ws"], upgrade(version="7"))
    assert status == 426
    assert (await client.call("sys.echo", {"x": 1}))["data"] == {"x": 1}
    await client.close()


async def test_handshake_timeout_closes_the_connection(app_factory: Callable[..., Any]) -> None:
    app = await app_factory(gate={"handshake_timeout": 0.1})
    silent = await TcpClient.open(app.ports["ws"])  # connects, never upgrades
    partial = await TcpClient.open(app.ports["ws"])
    partial.send_raw(upgrade()[:30])  # starts, never finishes
    assert await silent.closed()
    assert await partial.closed()
    client = await WsClient.open(app.ports["ws"])  # an upgraded connection is past the handshake timeout
    assert (await client.call("sys.echo"))["ok"] is True
    await client.close()
