"""The WebSocket driver over a real socket: the handshake (websockets' ServerProtocol), then our frame codec.

The codec's every case is in ``tests/unit/protocol/test_websocket.py``; these check the driver wires it up:
replies, pongs, close codes on the wire followed by the server closing TCP, and requests pipelined with the
handshake."""

from __future__ import annotations

import asyncio
import base64
import os

import msgpack
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, Frame, Opcode

from gameserver.app import App

REQUEST = msgpack.packb({"id": 7, "fn": "sys.echo", "args": {"x": 1}})
REPLY = {"id": 7, "ok": True, "data": {"x": 1}}


def handshake(path: str = "/gate", version: str = "13") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n\r\n"
    ).encode()


def client_frame(opcode: Opcode, data: bytes, *, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin=fin).serialize(mask=True)


class Raw:
    """A raw socket speaking WebSocket frames by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, app: App, first: bytes | None = None) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", app.ports["ws"])
        raw = cls(reader, writer)
        writer.write(handshake() if first is None else first)
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        return raw

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def frame(self) -> tuple[int, bytes]:
        head = await self.reader.readexactly(2)
        assert not head[1] & 0x80, "server frames are not masked"
        size = head[1] & 0x7F
        if size == 126:
            size = int.from_bytes(await self.reader.readexactly(2), "big")
        elif size == 127:
            size = int.from_bytes(await self.reader.readexactly(8), "big")
        return head[0], await self.reader.readexactly(size)

    async def closed_with(self) -> tuple[int, str]:
        """The server's close frame, then EOF: the server closes TCP (RFC 6455, 7.1.1)."""
        first, payload = await self.frame()
        assert first == 0x88
        close = Close.parse(payload)
        assert await self.reader.read() == b""
        self.writer.close()
        return close.code, close.reason


async def test_request_pipelined_with_the_handshake_is_answered(app: App) -> None:
    raw = await Raw.open(app, handshake() + client_frame(Opcode.BINARY, REQUEST))
    first, payload = await raw.frame()
    assert first == 0x82 and msgpack.unpackb(payload) == REPLY
    raw.writer.close()


async def test_handshake_sent_one_byte_at_a_time(app: App) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", app.ports["ws"])
    for byte in handshake() + client_frame(Opcode.BINARY, REQUEST):
        writer.write(bytes([byte]))
        await writer.drain()
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
    raw = Raw(reader, writer)
    assert msgpack.unpackb((await raw.frame())[1]) == REPLY
    writer.close()


async def test_fragmented_request_with_a_ping_between_fragments(app: App) -> None:
    raw = await Raw.open(app)
    raw.send(
        client_frame(Opcode.BINARY, REQUEST[:5], fin=False)
        + client_frame(Opcode.PING, b"are you there")
        + client_frame(Opcode.CONT, REQUEST[5:])
    )
    assert await raw.frame() == (0x8A, b"are you there")
    first, payload = await raw.frame()
    assert first == 0x82 and msgpack.unpackb(payload) == REPLY
    raw.writer.close()


async def test_websockets_client_ping_text_and_close(app: App) -> None:
    async with connect(f"ws://127.0.0.1:{app.ports['ws']}/gate") as ws:
        await asyncio.wait_for(await ws.ping(b"x"), 5)
        await ws.send('{"id": 1, "fn": "sys.echo", "args": {"t": "é"}}')
        assert await ws.recv() == '{"id":1,"ok":true,"data":{"t":"é"}}'
    assert ws.close_code == 1000  # our close was echoed


async def test_client_close_is_echoed_then_tcp_closed(app: App) -> None:
    raw = await Raw.open(app)
    raw.send(client_frame(Opcode.CLOSE, Close(1000, "done").serialize()))
    assert await raw.closed_with() == (1000, "done")


async def test_unmasked_frame_closes_with_1002(app: App) -> None:
    raw = await Raw.open(app)
    raw.send(Frame(Opcode.BINARY, REQUEST).serialize(mask=False))
    assert await raw.closed_with() == (1002, "client frames must be masked")


async def test_text_that_is_not_utf8_closes_with_1007(app: App) -> None:
    raw = await Raw.open(app)
    raw.send(client_frame(Opcode.TEXT, b'{"id": 1, "fn": "\xff"}'))
    assert (await raw.closed_with())[0] == 1007


async def test_undecodable_binary_closes_with_1007(app: App) -> None:
    raw = await Raw.open(app)
    raw.send(client_frame(Opcode.BINARY, b"\xc1"))
    assert (await raw.closed_with())[0] == 1007


async def test_message_over_the_limit_closes_with_1009_without_its_body(app: App) -> None:
    raw = await Raw.open(app)
    limit = app.config.gate.max_frame
    header = 2 + (2 if limit + 1 < 1 << 16 else 8)
    raw.send(client_frame(Opcode.BINARY, b"x" * (limit + 1))[:header])  # the header alone, no mask, no body
    assert await raw.closed_with() == (1009, f"expected at most {limit} bytes")


async def test_a_violation_leaves_other_connections_alone(app: App) -> None:
    good = await Raw.open(app)
    bad = await Raw.open(app)
    bad.send(bytes([0x83, 0x80]) + os.urandom(4))  # reserved opcode 0x3, empty masked payload
    assert (await bad.closed_with())[0] == 1002
    good.send(client_frame(Opcode.BINARY, REQUEST))
    assert msgpack.unpackb((await good.frame())[1]) == REPLY
    good.writer.close()


async def test_unsupported_version_gets_426(app: App) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", app.ports["ws"])
    writer.write(handshake(version="8"))
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 426 ") and b"Sec-WebSocket-Version: 13\r\n" in head
    writer.close()


async def test_unknown_path_gets_404_and_a_closed_socket(app: App) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", app.ports["ws"])
    writer.write(handshake("/nope") + client_frame(Opcode.BINARY, REQUEST))
    response = await reader.read()  # until the server closes
    assert response.startswith(b"HTTP/1.1 404 ") and b"\x82" not in response.partition(b"\r\n\r\n")[2][:1]
    writer.close()


async def test_shutdown_closes_with_1001(app: App) -> None:
    async with connect(f"ws://127.0.0.1:{app.ports['ws']}/gate") as ws:
        await app.stop()
        try:
            await asyncio.wait_for(ws.recv(), 5)
        except ConnectionClosed:
            pass
        assert ws.close_code == 1001
