"""What a connection asks of its framer, whatever the wire: length-prefixed frames (``frames.py``), CRLF lines
(``lines.py``), WebSocket frames (``websocket.py``, after the upgrade of ``handshake.py``).

A framer is sans-I/O like the codecs it wraps: bytes in, messages out, bytes to write. The driver owns one per
connection (``gameserver/drivers/connection.py``) and never asks which kind it is; the chat fan-out uses
:attr:`Framer.wire` to pick the bytes it encoded once per message for every member on that wire.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import IntEnum
from typing import Any, Protocol


class Wire(IntEnum):
    """How a message is framed on a connection; an index into a message's encodings (one per wire)."""

    LENGTH_PREFIX = 0
    LINES = 1
    WEBSOCKET = 2


class Framer(Protocol):
    """One connection's framing.

    Attributes:
        wire: what the peer reads: the chat fan-out writes it the bytes encoded for that wire.
        half_close: a peer may shut its sending side and still read the replies to what it sent (raw TCP gate).
        output: bytes the framing itself must send (WebSocket pongs and the close echo); the driver writes
            and clears it.
        done: the framing is over (WebSocket closing handshake): the driver closes the socket once ``output``
            is written.
        left: the peer ended the conversation on purpose (a WebSocket close frame with code 1000), as opposed to
            a connection that dropped: a resumable session ends at once instead of waiting for its client.
    """

    @property
    def wire(self) -> Wire: ...

    @property
    def half_close(self) -> bool: ...

    @property
    def output(self) -> Sequence[bytes]: ...

    @property
    def done(self) -> bool: ...

    @property
    def left(self) -> bool: ...

    def feed(self, data: bytes) -> Iterable[Any]:
        """Add received bytes; the messages now complete, in order. Raises ``ProtocolViolation``."""
        ...

    def buffered(self) -> int:
        """Bytes of a message begun and not complete: the driver's frame deadline runs while above 0."""
        ...

    def binary(self, payload: bytes) -> bytes:
        """``payload`` as one binary message on this wire (b"" if the framing takes no more messages)."""
        ...

    def text(self, payload: bytes) -> bytes:
        """``payload`` (UTF-8) as one text message on this wire (b"" if it takes no more messages)."""
        ...

    def closing(self, code: int, reason: str) -> bytes | None:
        """Bytes that say goodbye (a WebSocket close frame, then wait for the peer's); None: close the socket."""
        ...

    def failing(self, code: int, reason: str) -> bytes:
        """Bytes to write before closing the socket at once for a fault (b"" when the wire has none)."""
        ...


NO_OUTPUT: tuple[bytes, ...] = ()
