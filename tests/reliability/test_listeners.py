"""Abusive clients on every listener of a real `gameserver run` (issue 12): random bytes, slowloris (one byte at a
time, never finishing), connect bursts. The server closes what breaks the contract or stalls, keeps serving
everybody else, and logs no traceback. Every deadline is set to :data:`SHORT` here (``http.header_timeout``,
``gate.handshake_timeout``, ``chat.login_timeout``, ``gate.frame_timeout``, ``chat.line_timeout``)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import msgpack
import pytest

from tests.reliability.harness import ROWS, Row, Server, backends, players

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

SHORT = 2.0  # this server's deadlines: HTTP head, WebSocket upgrade, chat LOGIN, a gate frame, a chat line
SETTINGS = {
    "http.header_timeout": SHORT,
    "gate.handshake_timeout": SHORT,
    "chat.login_timeout": SHORT,
    "gate.frame_timeout": SHORT,
    "chat.line_timeout": SHORT,
}
FUZZ_CONNECTIONS = 25  # per listener
DRIP = 0.5  # seconds between the bytes of a slowloris client
SLOW_CONNECTIONS = 10  # per listener and phase
GUARD = 40.0  # the longest a slow client keeps dripping before the test gives up on the server closing it
BURST = 300  # simultaneous connects per listener: more than asyncio's default backlog of 100
SEED = 12  # the random bytes are the same on every run


def upgrade_request(port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def masked_frame(opcode: int, payload: bytes, *, fin: bool = True, declared: int | None = None) -> bytes:
    """A client frame (masked with a zero key, so the payload goes as it is), with a 16-bit length field."""
    size = len(payload) if declared is None else declared
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | 126]) + size.to_bytes(2, "big") + b"\0\0\0\0" + payload


async def open_ws(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(upgrade_request(port, path))
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bool:
    """Read (and drop) until the server closes; False if it still holds the connection after ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
        return True
    except TimeoutError:
        return False
    except OSError:  # reset: closed too
        return True


async def still_serving(server: Server) -> None:
    assert server.alive(), server.logs()[-3000:]
    assert (await server.health())[0] == 200
    assert await server.echo()


def fuzz_inputs(rng: random.Random, listener: str, port: int) -> list[tuple[bytes, bytes]]:
    """(opening, noise) pairs: the noise goes after a valid opening (an upgrade, a frame header) or alone."""
    inputs = []
    for n in range(FUZZ_CONNECTIONS):
        noise = rng.randbytes(rng.randint(1, 3000))
        opening = b""
        if n % 3 == 1:
            opening = {
                "gate-tcp": (200).to_bytes(4, "big"),
                "ws": upgrade_request(port, "/gate"),
                "chat-tcp": b"LOGIN     ",
                "http": b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n",
            }[listener]
        elif n % 3 == 2 and listener == "ws":
            opening = upgrade_request(port, "/chat")
        inputs.append((opening, noise))
    return inputs


async def test_random_bytes_on_every_listener(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    async with backends(tmp_path) as (mariadb, redis):
        server = Server(tmp_path, mariadb, redis, **SETTINGS)
        await server.start()
        try:
            await server.wait_healthy()
            for listener in ("gate-tcp", "ws", "chat-tcp", "http"):
                port = server.ports[listener]
                tracebacks = server.tracebacks()
                connections = []
                for opening, noise in fuzz_inputs(rng, listener, port):
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(opening + noise)
                    connections.append((reader, writer))
                # Wait past the pre-request deadlines: what is still open then waits for more bytes of a frame.
                closed = await asyncio.gather(*(closed_by_server(r, SHORT * 2) for r, _ in connections))
                for _, writer in connections:
                    writer.close()
                await still_serving(server)
                row = Row(f"random bytes on {listener} ({FUZZ_CONNECTIONS} connections)")
                row.held = f"{len(closed) - sum(closed)} of {len(closed)} after {SHORT * 2:g} s"
                row.tracebacks = server.tracebacks() - tracebacks
                row.survived = server.alive() and row.tracebacks == 0
                ROWS.append(row)
            assert server.tracebacks() == 0, server.logs()[-5000:]
        finally:
            server.kill()


async def drip(writer: asyncio.StreamWriter, reader: asyncio.StreamReader, data: bytes) -> float | None:
    """Send ``data`` one byte every :data:`DRIP` seconds, forever (cycling); the seconds until the server closed the
    connection, or None if it still held it after :data:`GUARD`."""
    started = time.monotonic()
    eof = asyncio.ensure_future(closed_by_server(reader, GUARD))
    try:
        for index in range(int(GUARD / DRIP)):
            if eof.done():
                return time.monotonic() - started
            writer.write(data[index % len(data) : index % len(data) + 1])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(eof), DRIP)
        return time.monotonic() - started if eof.done() and eof.result() else None
    except OSError:
        return time.monotonic() - started
    finally:
        eof.cancel()
        writer.close()


Opener = Callable[[Server], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]]]


async def run_slowloris(server: Server, name: str, opener: Opener) -> list[float | None]:
    tracebacks = server.tracebacks()
    opened = [await opener(server) for _ in range(SLOW_CONNECTIONS)]
    dripping = asyncio.gather(*(drip(writer, reader, data) for reader, writer, data in opened))
    await still_serving(server)  # while they drip
    closed_after = await dripping
    held = sum(1 for seconds in closed_after if seconds is None)
    row = Row(f"slowloris, {name} ({SLOW_CONNECTIONS} connections, a byte every {DRIP:g} s)")
    done = [seconds for seconds in closed_after if seconds is not None]
    row.held = f"{held} of {len(closed_after)}" + (f"; closed after {max(done):.1f} s" if done else "")
    row.tracebacks = server.tracebacks() - tracebacks
    row.survived = held == 0 and server.alive() and row.tracebacks == 0
    ROWS.append(row)
    await still_serving(server)
    return closed_after


async def raw(server: Server, listener: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.ports[listener])


async def http_head(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    return (*await raw(server, "http"), b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000)


async def ws_upgrade(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    return (*await raw(server, "ws"), upgrade_request(server.ports["ws"], "/gate")[:-2] + b"X-Slow: " + b"a" * 4000)


async def chat_before_login(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    return (*await raw(server, "chat-tcp"), b"LOGIN     " + b"n" * 4000)


async def test_slowloris_before_the_first_request(tmp_path: Path) -> None:
    """The phases that already have a deadline: an HTTP request head, a WebSocket upgrade, a chat LOGIN."""
    async with backends(tmp_path) as (mariadb, redis):
        server = Server(tmp_path, mariadb, redis, **SETTINGS)
        await server.start()
        try:
            await server.wait_healthy()
            phases = [
                ("HTTP request head", http_head),
                ("WebSocket upgrade", ws_upgrade),
                ("chat-tcp before LOGIN", chat_before_login),
            ]
            results = await asyncio.gather(*(run_slowloris(server, name, opener) for name, opener in phases))
            for (name, _), closed_after in zip(phases, results, strict=True):
                assert None not in closed_after, name
            assert server.tracebacks() == 0, server.logs()[-5000:]
        finally:
            server.kill()


async def test_slowloris_inside_a_frame_or_line(tmp_path: Path) -> None:
    """``gate.frame_timeout`` and ``chat.line_timeout``: a gate frame, a WebSocket frame and a chat line after LOGIN,
    each begun and never finished."""
    async with backends(tmp_path) as (mariadb, redis):
        server = Server(tmp_path, mariadb, redis, **SETTINGS)
        await server.start()
        try:
            await server.wait_healthy()
            (player,), _ = await players(server, 1)

            async def gate_frame(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
                return (*await raw(server, "gate-tcp"), (4000).to_bytes(4, "big") + b"\x80" * 4000)

            async def ws_frame(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
                reader, writer = await open_ws(server.ports["ws"], "/gate")
                return reader, writer, masked_frame(0x2, b"\x80" * 4000)

            async def chat_line(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
                reader, writer = await raw(server, "chat-tcp")
                writer.write(b"LOGIN     " + (await nonce(server, player.token)).encode() + b"\r\n")
                assert (await reader.readuntil(b"\r\n")).startswith(b"OK")
                return reader, writer, b"PUBLIC    " + b"x" * 4000

            phases = [
                ("gate-tcp inside a frame", gate_frame),
                ("WebSocket inside a frame", ws_frame),
                ("chat-tcp inside a line after LOGIN", chat_line),
            ]
            results = await asyncio.gather(*(run_slowloris(server, name, opener) for name, opener in phases))
            for (name, _), closed_after in zip(phases, results, strict=True):
                assert None not in closed_after, name
            assert server.tracebacks() == 0, server.logs()[-5000:]
        finally:
            server.kill()


async def nonce(server: Server, token: str) -> str:
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {token}"}
        async with session.post(server.url("/auth/nonce"), headers=headers) as response:
            assert response.status == 200, await response.text()
            return str((await response.json())["nonce"])


async def gate_echo(port: int) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        body = msgpack.packb({"id": 1, "fn": "sys.echo", "args": {"n": 1}})
        writer.write(len(body).to_bytes(4, "big") + body)
        size = int.from_bytes(await reader.readexactly(4), "big")
        return bool(msgpack.unpackb(await reader.readexactly(size))["ok"])
    finally:
        writer.close()


async def ws_echo(port: int) -> bool:
    reader, writer = await open_ws(port, "/gate")
    try:
        writer.write(masked_frame(0x1, b'{"id": 1, "fn": "sys.echo", "args": {"n": 1}}'))
        head = await reader.readexactly(2)
        size = head[1] & 0x7F
        if size == 126:
            size = int.from_bytes(await reader.readexactly(2), "big")
        return b'"ok":true' in (await reader.readexactly(size)).replace(b" ", b"")
    finally:
        writer.close()


async def chat_login(port: int, nonce: str) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"LOGIN     " + nonce.encode() + b"\r\n")
        return (await reader.readuntil(b"\r\n")).startswith(b"OK")
    finally:
        writer.close()


async def http_health(port: int) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
    finally:
        writer.close()


async def test_connect_bursts_on_every_listener(tmp_path: Path) -> None:
    """:data:`BURST` clients connect at once, as after a restart, and each is served: a request answered."""
    async with backends(tmp_path) as (mariadb, redis):
        server = Server(tmp_path, mariadb, redis, **SETTINGS)
        await server.start()
        try:
            await server.wait_healthy()
            (player,), _ = await players(server, 1)
            nonces = [await nonce(server, player.token) for _ in range(BURST)]
            clients: list[tuple[str, Callable[[int], Awaitable[bool]]]] = [
                ("gate-tcp", lambda n: gate_echo(server.ports["gate-tcp"])),
                ("ws", lambda n: ws_echo(server.ports["ws"])),
                ("chat-tcp", lambda n: chat_login(server.ports["chat-tcp"], nonces[n])),
                ("http", lambda n: http_health(server.ports["http"])),
            ]
            for listener, client in clients:
                tracebacks = server.tracebacks()
                started = time.monotonic()
                async with asyncio.timeout(GUARD):
                    served = await asyncio.gather(*(client(n) for n in range(BURST)), return_exceptions=True)
                took = time.monotonic() - started
                errors = [s for s in served if isinstance(s, BaseException)]
                count = sum(1 for s in served if s is True)
                row = Row(f"connect burst on {listener} ({BURST} at once)")
                row.held = f"{count} of {BURST} served in {took:.2f} s"
                row.tracebacks = server.tracebacks() - tracebacks
                row.survived = count == BURST and row.tracebacks == 0
                ROWS.append(row)
                assert count == BURST, (listener, errors[:3])
            await still_serving(server)
            assert server.tracebacks() == 0, server.logs()[-5000:]
        finally:
            server.kill()
