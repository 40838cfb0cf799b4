"""One chat channel's members in this process, and the fan-out: encode once, the same bytes to every member.

A message is encoded once per wire that has members (the CRLF line for raw TCP, the text frame for WebSocket),
then the same bytes go to every member's transport. A member whose transport holds more than ``chat.send_queue``
bytes gets nothing until it drains (:meth:`~gameserver.features.chatedge.service.Chat.over_bound`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gameserver.drivers.connection import Connection
from gameserver.metrics import CHAT
from gameserver.protocol.framing import Wire
from gameserver.protocol.lines import CRLF
from gameserver.protocol.websocket import OP_TEXT, encode_frame

if TYPE_CHECKING:
    from gameserver.features.chatedge.client import ChatClient
    from gameserver.features.chatedge.service import Chat

LINES = Wire.LINES
WEBSOCKET = Wire.WEBSOCKET


def ws_text_frame(body: bytes) -> bytes:
    """An unmasked text frame (RFC 6455, 5.2): the same bytes for every WebSocket recipient."""
    return encode_frame(OP_TEXT, body)


class Channel:
    """The members of one channel in this process; the bus calls it with each message's body."""

    __slots__ = ("name", "chat", "members", "wires", "pending", "last_write", "timer", "_snapshot")

    def __init__(self, name: str, chat: Chat) -> None:
        self.name = name
        self.chat = chat
        self.members: dict[Connection, tuple[asyncio.Transport, Wire]] = {}
        self.wires = [0] * len(Wire)  # members on each wire: only those wires get an encoding
        self._snapshot: tuple[tuple[Wire, tuple[tuple[Connection, asyncio.Transport], ...]], ...] | None = None
        self.pending: list[bytes] = []  # bodies waiting for the flush (chat.flush_interval > 0)
        self.last_write = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def __bool__(self) -> bool:
        return bool(self.members)

    def add(self, client: ChatClient) -> None:
        conn = client.conn
        transport = conn.transport
        if transport is None or conn in self.members:
            return
        wire = conn.framer.wire
        self.members[conn] = (transport, wire)
        self.wires[wire] += 1
        self._snapshot = None

    def discard(self, client: ChatClient) -> None:
        member = self.members.pop(client.conn, None)
        if member is not None:
            self.wires[member[1]] -= 1
            self._snapshot = None

    def __call__(self, channel: str, body: bytes) -> None:
        interval = self.chat.flush_interval
        if interval:
            # At most one write per member every `interval` seconds: a message after a quiet spell goes out
            # at once, the ones that follow it closely wait (at most `interval`) and go out together.
            if self.pending:
                self.pending.append(body)
                return
            loop = self.chat.loop
            now = loop.time()
            wait = self.last_write + interval - now
            if wait > 0:
                self.pending.append(body)
                self.timer = loop.call_later(wait, self.flush)
                return
            self.last_write = now
        wires = self.wires
        line = body + CRLF if wires[LINES] else b""
        frame = ws_text_frame(body) if wires[WEBSOCKET] else b""
        self.write((b"", line, frame), 1)

    def flush(self) -> None:
        """Write the gathered messages, in order: one write per member for all of them."""
        self.timer = None
        self.last_write = self.chat.loop.time()
        bodies, self.pending = self.pending, []
        if bodies:
            wires = self.wires
            lines = CRLF.join(bodies) + CRLF if wires[LINES] else b""
            frames = b"".join([ws_text_frame(body) for body in bodies]) if wires[WEBSOCKET] else b""
            self.write((b"", lines, frames), len(bodies))

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.pending = []

    def write(self, encoded: tuple[bytes, bytes, bytes], count: int) -> None:
        """The fan-out: to every member the bytes of its wire (``encoded[wire]``), ``count`` messages in them;
        a member over ``chat.send_queue`` gets nothing (:meth:`Chat.over_bound`), one saying goodbye neither
        (no data frame after a close frame, RFC 6455 5.5.1)."""
        groups = self._snapshot
        if groups is None:
            groups = self._snapshot = self._groups()
        delivered = 0
        for wire, members in groups:
            data = encoded[wire]
            for conn, transport in members:
                if conn.paused_since is None:
                    if not conn.closing:
                        try:
                            transport.write(data)
                            delivered += count
                        except Exception:  # closed under us; connection_lost removes it
                            pass
                else:
                    self.chat.over_bound(conn, count)
        CHAT.deliveries += delivered

    def _groups(self) -> tuple[tuple[Wire, tuple[tuple[Connection, asyncio.Transport], ...]], ...]:
        """The members by wire, as tuples: rebuilt only when a member joins or leaves."""
        groups: dict[Wire, list[tuple[Connection, asyncio.Transport]]] = {}
        for conn, (transport, wire) in self.members.items():
            groups.setdefault(wire, []).append((conn, transport))
        return tuple((wire, tuple(members)) for wire, members in groups.items())
