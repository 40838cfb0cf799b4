"""What every connection enforces whatever its framer (gameserver/drivers/connection.py): a frame or line begun must
complete within ``gate.frame_timeout`` / ``chat.line_timeout``, and the listen backlog is ``server.backlog``."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from gameserver.app import App
from tests.clients import ChatClient, RawWebSocket, TcpClient
from tests.conftest import IN_CI
from tests.server.support import tcp_frame

DEADLINE = 0.5  # the frame deadline these tests configure; the idle timeout stays far above it


async def dribble(write: Callable[[bytes], Any], data: bytes, closed: asyncio.Task[Any]) -> None:
    """Write ``data`` one byte every tenth of a second (each byte resets the idle timer) until ``closed`` ends."""
    for byte in data:
        if closed.done():
            return
        write(bytes([byte]))
        await asyncio.sleep(0.1)


async def test_a_gate_frame_dribbled_a_byte_at_a_time_is_cut_off(app_factory: Callable[..., Any]) -> None:
    app: App = await app_factory(gate={"frame_timeout": DEADLINE})
    bystander = await TcpClient.open(app.ports["gate-tcp"])
    slow = await TcpClient.open(app.ports["gate-tcp"])
    closed = asyncio.create_task(slow.closed(timeout=30))
    await dribble(slow.send_raw, tcp_frame({"id": 1, "fn": "sys.echo", "args": {"pad": "x" * 500}}), closed)
    assert await closed
    assert (await bystander.call("sys.echo"))["ok"] is True


async def test_frames_that_keep_completing_are_not_cut_off(app_factory: Callable[..., Any]) -> None:
    app: App = await app_factory(gate={"frame_timeout": DEADLINE})
    client = await TcpClient.open(app.ports["gate-tcp"])
    frames = b"".join(tcp_frame({"id": n, "fn": "sys.echo"}) for n in range(1, 9))
    step = len(frames) // 16  # each write completes a frame begun by the one before and begins another
    for start in range(0, len(frames), step):
        client.send_raw(frames[start : start + step])
        await asyncio.sleep(DEADLINE / 5)  # 16 writes: the partial frames together outlast the deadline
    assert sorted([(await client.recv())["id"] for _ in range(8)]) == list(range(1, 9))


async def test_a_websocket_frame_dribbled_is_cut_off_with_1008(app_factory: Callable[..., Any]) -> None:
    app: App = await app_factory(gate={"frame_timeout": DEADLINE})
    slow = await RawWebSocket.open(app.ports["ws"])
    slow.protocol.send_binary(tcp_frame({"id": 1, "fn": "sys.echo"})[4:])  # not flushed: dribbled below
    frame = b"".join(slow.protocol.data_to_send())
    closed = asyncio.create_task(slow.close_code(timeout=30))
    await dribble(slow.writer.write, frame, closed)
    assert await closed == 1008


@pytest.mark.parametrize("kind", ["tcp", "ws"])
async def test_a_chat_line_dribbled_is_cut_off(app_factory: Callable[..., Any], kind: str) -> None:
    app: App = await app_factory(chat={"line_timeout": DEADLINE, "login_timeout": 30.0})
    if kind == "tcp":
        client = await ChatClient.tcp(app.ports["chat-tcp"])
        closed = asyncio.create_task(_closed(client))
        await dribble(client.writer.write, b"PING      " + b"x" * 40 + b"\r\n", closed)
    else:
        raw = await RawWebSocket.open(app.ports["ws"], "/chat")
        raw.protocol.send_text(b"PING      " + b"x" * 40)  # not flushed: dribbled below
        closed = asyncio.create_task(raw.close_code(timeout=30))
        await dribble(raw.writer.write, b"".join(raw.protocol.data_to_send()), closed)
    assert await closed in (True, 1008)  # TCP: closed; WebSocket: 1008


async def _closed(client: ChatClient) -> bool:
    async with asyncio.timeout(30):
        while await client.reader.read(65536):
            pass
    return True


def listen_backlog(port: int) -> int:
    """The backlog the kernel keeps for a listening socket: ``ss``'s Send-Q column."""
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(out.split()[2])


async def test_every_listener_has_the_configured_backlog(app_factory: Callable[..., Any]) -> None:
    if shutil.which("ss") is None:
        if IN_CI:
            pytest.fail("ss (iproute2) is missing")
        pytest.skip("ss (iproute2) is not installed: apt-get install iproute2")
    app: App = await app_factory(server={"backlog": 77})
    assert set(app.ports) == {"gate-tcp", "chat-tcp", "ws", "http"}
    assert {name: listen_backlog(port) for name, port in app.ports.items()} == dict.fromkeys(app.ports, 77)
