"""Test clients that speak the wire contract as a game client would (PROTOCOL.md)."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import TYPE_CHECKING, Any

import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

if TYPE_CHECKING:
    from gameserver.app import App


async def close_writer(writer: asyncio.StreamWriter) -> None:
    """Close a stream, ignoring a peer that already reset it."""
    writer.close()
    try:
        await writer.wait_closed()
    except ConnectionError:
        pass


async def read_until_eof(reader: asyncio.StreamReader) -> bool:
    """Skip what the server still sends until it closes the stream (EOF or reset); True."""
    while True:
        try:
            if not await reader.read(65536):
                return True
        except ConnectionError:
            return True


class TcpClient:
    """Raw TCP gate client: 4-byte big-endian length + msgpack map."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.ids = itertools.count(1)

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1", **kwargs: Any) -> TcpClient:
        """``kwargs`` go to :func:`asyncio.open_connection`: ``local_addr=("127.0.0.2", 0)`` is another client."""
        reader, writer = await asyncio.open_connection(host, port, **kwargs)
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
            return await read_until_eof(self.reader)

    async def close(self) -> None:
        await close_writer(self.writer)


def ws_scheme(kwargs: dict[str, Any]) -> str:
    return "wss" if kwargs.get("ssl") else "ws"


class WsClient:
    """WebSocket gate client: binary frames carry msgpack, text frames JSON."""

    def __init__(self, ws: ClientConnection, binary: bool) -> None:
        self.ws = ws
        self.binary = binary
        self.ids = itertools.count(1)

    @classmethod
    async def open(cls, port: int, path: str = "/gate", *, binary: bool = True, **kwargs: Any) -> WsClient:
        """``ssl=context`` connects with wss://; other keywords go to websockets' ``connect``."""
        ws = await connect(f"{ws_scheme(kwargs)}://127.0.0.1:{port}{path}", max_size=None, **kwargs)
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

    async def close_code(self, timeout: float = 5.0) -> int | None:
        """Wait for the server to close the connection (messages still in flight are skipped); its close code."""
        async with asyncio.timeout(timeout):
            try:
                while True:
                    await self.ws.recv()
            except ConnectionClosed:
                return self.ws.close_code


class RawWebSocket:
    """A WebSocket client on websockets' sans-I/O protocol: it sends frames a real client refuses to send
    (a text frame that is not UTF-8, fragments) and reports the close code the server chose."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: ClientProtocol) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = protocol
        self.frames: list[Frame] = []
        self.response: Response | None = None

    @classmethod
    async def open(cls, port: int, path: str = "/gate") -> RawWebSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{path}"), max_size=None)
        client = cls(reader, writer, protocol)
        protocol.send_request(protocol.connect())
        client.flush()
        while client.response is None:
            await client._read()
        if protocol.state is not State.OPEN:
            raise ConnectionError(f"handshake refused: {client.response.status_code}")
        return client

    def flush(self) -> None:
        for data in self.protocol.data_to_send():
            if self.writer.is_closing():
                continue
            try:
                if data:
                    self.writer.write(data)
                elif self.writer.can_write_eof():
                    self.writer.write_eof()
            except OSError:  # the server has closed already
                pass

    def send_text(self, data: bytes, *, fin: bool = True) -> None:
        self.protocol.send_text(data, fin=fin)  # not checked for UTF-8, on purpose
        self.flush()

    def send_binary(self, data: bytes, *, fin: bool = True) -> None:
        self.protocol.send_binary(data, fin=fin)
        self.flush()

    def send_continuation(self, data: bytes, *, fin: bool) -> None:
        self.protocol.send_continuation(data, fin=fin)
        self.flush()

    async def _read(self) -> bool:
        try:
            data = await self.reader.read(65536)
        except ConnectionResetError:  # a reset loses what the server sent last: count it as no close frame
            data = b""
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                self.response = event
            elif event.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):  # control frames are answered
                self.frames.append(event)
        self.flush()
        return bool(data)

    async def recv(self) -> Frame:
        """The next data frame from the server."""
        while not self.frames:
            if not await self._read():
                raise ConnectionError("connection closed")
        return self.frames.pop(0)

    async def close_code(self, timeout: float = 5.0) -> int | None:
        """Read until the server closes the connection; its close code (None: closed without a close frame)."""
        async with asyncio.timeout(timeout):
            while await self._read():
                pass
        rcvd = self.protocol.close_rcvd
        return rcvd.code if rcvd is not None else None

    async def close(self) -> None:
        await close_writer(self.writer)


class ChatClient:
    """Chat edge client (PROTOCOL.md, "Chat edge: line protocol") over raw TCP or WebSocket ``/chat``.

    Lines go out as ``COMMAND`` padded to 10 bytes + payload (+ CRLF on TCP); :meth:`recv` returns
    ``(command, payload)`` with the padding stripped. Every wait has a timeout, so a missing line fails the test.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader | None = None,
        writer: asyncio.StreamWriter | None = None,
        ws: ClientConnection | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.ws = ws

    @classmethod
    async def tcp(cls, port: int, host: str = "127.0.0.1", **kwargs: Any) -> ChatClient:
        reader, writer = await asyncio.open_connection(host, port, **kwargs)
        return cls(reader=reader, writer=writer)

    @classmethod
    async def websocket(cls, port: int, path: str = "/chat", **kwargs: Any) -> ChatClient:
        """``ssl=context`` connects with wss://; other keywords go to websockets' ``connect``."""
        return cls(ws=await connect(f"{ws_scheme(kwargs)}://127.0.0.1:{port}{path}", max_size=None, **kwargs))

    @property
    def kind(self) -> str:
        return "ws" if self.ws is not None else "tcp"

    async def send_raw(self, data: bytes | str) -> None:
        """TCP: bytes as they are; WebSocket: one text frame (str) or binary frame (bytes)."""
        if self.ws is not None:
            await self.ws.send(data)
        else:
            assert self.writer is not None
            self.writer.write(data if isinstance(data, bytes) else data.encode())
            await self.writer.drain()

    async def send(self, command: str, payload: str = "") -> None:
        line = command.ljust(10) + payload
        await self.send_raw(line if self.ws is not None else line + "\r\n")

    async def recv(self, timeout: float = 5.0) -> tuple[str, str]:
        async with asyncio.timeout(timeout):
            if self.ws is not None:
                line = await self.ws.recv()
                text = line if isinstance(line, str) else line.decode()
            else:
                assert self.reader is not None
                raw = await self.reader.readuntil(b"\r\n")
                text = raw[:-2].decode()
        return text[:10].rstrip(), text[10:]

    async def recv_message(self, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
        """The next ``PUBLIC`` / ``FAMILY`` line as ``(command, {"uid", "name", "text", "ts"})``."""
        command, payload = await self.recv(timeout)
        assert command in ("PUBLIC", "FAMILY"), (command, payload)
        return command, json.loads(payload)

    async def login(self, nonce: str) -> dict[str, Any]:
        await self.send("LOGIN", nonce)
        command, payload = await self.recv()
        assert command == "OK", (command, payload)
        identity: dict[str, Any] = json.loads(payload)
        return identity

    async def closed(self, timeout: float = 5.0) -> bool:
        """True once the server has closed the connection (lines still in flight are skipped)."""
        async with asyncio.timeout(timeout):
            if self.ws is not None:
                try:
                    while True:
                        await self.ws.recv()
                except Exception:  # ConnectionClosed, with whatever code
                    return True
            assert self.reader is not None
            return await read_until_eof(self.reader)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            return
        assert self.writer is not None
        await close_writer(self.writer)


def http_url(app: App, path: str) -> str:
    """The address of ``path`` on ``app``'s HTTP listener."""
    return f"http://127.0.0.1:{app.ports['http']}{path}"
