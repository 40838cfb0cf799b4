"""Limits every listener enforces (gameserver/drivers/listener.py): idle clients, connection count, slow readers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from gameserver.app import App
from tests.clients import RawWebSocket, TcpClient, WsClient
from tests.server.support import tcp_frame, wait_until


async def test_idle_timeout_closes_tcp_and_websocket_1008(app_factory: Callable[..., Any]) -> None:
    app = await app_factory(gate={"idle_timeout": 1.0, "handshake_timeout": 0.1})
    tcp = await TcpClient.open(app.ports["gate-tcp"])
    assert (await tcp.call("sys.echo"))["ok"] is True
    ws = await RawWebSocket.open(app.ports["ws"])
    tcp_closed, ws_code = await asyncio.gather(tcp.closed(), ws.close_code())
    assert tcp_closed
    assert ws_code == 1008
    await tcp.close()


async def test_max_connections(app_factory: Callable[..., Any]) -> None:
    app = await app_factory(gate={"max_connections": 2})
    first = await TcpClient.open(app.ports["gate-tcp"])
    second = await TcpClient.open(app.ports["gate-tcp"])
    for client in (first, second):
        assert (await client.call("sys.echo"))["ok"] is True
    refused = await TcpClient.open(app.ports["gate-tcp"])
    assert await refused.closed()
    assert (await first.call("sys.echo"))["ok"] is True  # the admitted ones are unaffected
    await first.close()
    listener = app.listeners["gate-tcp"]
    await wait_until(lambda: len(listener.connections) == 1)
    third = await TcpClient.open(app.ports["gate-tcp"])
    assert (await third.call("sys.echo"))["ok"] is True
    for client in (second, third, refused):
        await client.close()


async def test_max_per_address(app_factory: Callable[..., Any], caplog: pytest.LogCaptureFixture) -> None:
    app = await app_factory(gate={"max_per_address": 2})
    port = app.ports["gate-tcp"]
    first, second = await TcpClient.open(port), await TcpClient.open(port)
    refused = await TcpClient.open(port)
    assert await refused.closed()
    assert "refusing 127.0.0.1:" in caplog.text and "2 connections open from 127.0.0.1" in caplog.text
    other = await TcpClient.open(port, local_addr=("127.0.0.2", 0))  # another client: its own count
    for client in (first, second, other):
        assert (await client.call("sys.echo"))["ok"] is True
    await first.close()
    listener = app.listeners["gate-tcp"]
    await wait_until(lambda: listener.by_address.get("127.0.0.1") == 1)
    again = await TcpClient.open(port)  # a slot of that address is free again
    assert (await again.call("sys.echo"))["ok"] is True
    for client in (second, other, again, refused):
        await client.close()
    await wait_until(lambda: not listener.by_address)  # nothing kept for addresses that left


async def test_a_trusted_proxy_is_not_capped_per_address(app_factory: Callable[..., Any]) -> None:
    app = await app_factory(gate={"max_per_address": 1}, http={"trusted_proxies": ["127.0.0.1"]})
    clients = [await WsClient.open(app.ports["ws"]) for _ in range(3)]  # nginx in front: one address, many players
    for client in clients:
        assert (await client.call("sys.echo"))["ok"] is True
        await client.close()


async def test_max_connections_is_per_listener(app_factory: Callable[..., Any]) -> None:
    app = await app_factory(gate={"max_connections": 1})
    tcp = await TcpClient.open(app.ports["gate-tcp"])
    ws = await WsClient.open(app.ports["ws"])
    assert (await tcp.call("sys.echo"))["ok"] is True
    assert (await ws.call("sys.echo"))["ok"] is True
    await tcp.close()
    await ws.close()


async def test_a_client_that_does_not_read_is_not_read_from(app_factory: Callable[..., Any]) -> None:
    write_buffer = 64 * 1024
    app: App = await app_factory(gate={"write_buffer": write_buffer})
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fill up fast
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", app.ports["gate-tcp"]))
    request = tcp_frame({"id": 1, "fn": "sys.echo", "args": {"pad": "x" * 30_000}})
    listener = app.listeners["gate-tcp"]
    await wait_until(lambda: len(listener.connections) == 1)
    (conn,) = listener.connections
    assert conn.transport is not None
    transport = conn.transport

    async def flood() -> None:
        while True:
            await loop.sock_sendall(sock, request)

    sender = asyncio.create_task(flood())
    try:
        await wait_until(lambda: not transport.is_reading())  # type: ignore[attr-defined]
        # Paused: what is queued for the client is bounded by the limit plus one read's worth of replies,
        # and stays so while the client keeps sending.
        bound = write_buffer + 1024 * 1024
        for _ in range(50):
            assert transport.get_write_buffer_size() < bound
            assert not transport.is_reading()  # type: ignore[attr-defined]
            await asyncio.sleep(0)
        # Once the client reads, the server reads again and answers.
        sender.cancel()
        received = 0
        async with asyncio.timeout(10):
            while not transport.is_reading():  # type: ignore[attr-defined]
                received += len(await loop.sock_recv(sock, 1 << 20))
        assert received > 0
    finally:
        sender.cancel()
        sock.close()


async def test_a_stalled_client_does_not_stall_the_others(app_factory: Callable[..., Any]) -> None:
    app = await app_factory(gate={"write_buffer": 1024})
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", app.ports["gate-tcp"]))
    big = msgpack.packb({"id": 1, "fn": "sys.echo", "args": {"pad": "y" * 60_000}})
    sender = asyncio.create_task(loop.sock_sendall(sock, (len(big).to_bytes(4, "big") + big) * 50))
    listener = app.listeners["gate-tcp"]
    await wait_until(lambda: any(not c.transport.is_reading() for c in listener.connections if c.transport))  # type: ignore[attr-defined]
    other = await TcpClient.open(app.ports["gate-tcp"])
    assert (await other.call("sys.echo", {"fine": True}))["data"] == {"fine": True}
    await other.close()
    sender.cancel()
    sock.close()
