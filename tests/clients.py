"""Test clients that speak the wire contract as a game client would (PROTOCOL.md)."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import msgpack
from websockets.asyncio.client import ClientConnection, connect


class TcpClient:
    """Raw TCP gate client: 4-byte big-endian length + msgpack map."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.ids = itertools.count(1)

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1") -> TcpClient:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def send(self, message: Any) -> None:
        body = msgpack.packb(message)
        self.writer.write(len(body).to_bytes(4, "big") + body)

    async def recv(self) -> Any:
        size = int.from_bytes(await self.reader.readexactly(4), "big")
        return msgpack.unpackb(await self.reader.readexactly(size), raw=False)

    async def call(self, fn: str, args: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        request_id = next(self.ids)
        self.send({"id": request_id, "fn": fn, "args": args or {}, **extra})
        while True:
            reply = await self.recv()
            if reply.get("id") == request_id:
                return dict(reply)

    async def closed(self, timeout: float = 5.0) -> bool:
        """True once the server has closed the connection (EOF)."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    if not await self.reader.read(65536):
                        return True
                except ConnectionError:
                    return True

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


class WsClient:
    """WebSocket gate client: binary frames carry msgpack, text frames JSON."""

    def __init__(self, ws: ClientConnection, binary: bool) -> None:
        self.ws = ws
        self.binary = binary
        self.ids = itertools.count(1)

    @classmethod
    async def open(cls, port: int, path: str = "/gate", *, binary: bool = True, **kwargs: Any) -> WsClient:
        ws = await connect(f"ws://127.0.0.1:{port}{path}", max_size=None, **kwargs)
        return cls(ws, binary)

    async def send(self, message: Any) -> None:
        await self.ws.send(msgpack.packb(message) if self.binary else json.dumps(message))

    async def recv(self) -> Any:
        data = await self.ws.recv()
        return msgpack.unpackb(data, raw=False) if isinstance(data, bytes) else json.loads(data)

    async def call(self, fn: str, args: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        request_id = next(self.ids)
        await self.send({"id": request_id, "fn": fn, "args": args or {}, **extra})
        while True:
            reply = await self.recv()
            if reply.get("id") == request_id:
                return dict(reply)

    async def close(self) -> None:
        await self.ws.close()
