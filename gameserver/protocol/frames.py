"""Raw TCP gate framing: a 4-byte big-endian unsigned length N, then N bytes (PROTOCOL.md, "Listeners")."""

from __future__ import annotations

import struct

from gameserver.errors import CloseCode, ProtocolViolation
from gameserver.protocol.framing import NO_OUTPUT, Wire

HEADER_SIZE = 4
DEFAULT_MAX_FRAME = 64 * 1024

_HEADER = struct.Struct(">I")  # a bound Struct method is about twice as fast as int.from_bytes on a slice
_pack_header = _HEADER.pack
_unpack_header = _HEADER.unpack_from


class FrameDecoder:
    """Split a byte stream into frame payloads.

    Args:
        max_size: largest payload accepted; a longer length prefix raises :class:`ProtocolViolation`
            (1009) from the header alone, before any of the body is buffered.
    """

    __slots__ = ("_buffer", "max_size")

    def __init__(self, max_size: int = DEFAULT_MAX_FRAME) -> None:
        self.max_size = max_size
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the payloads of every frame now complete, in order."""
        buffer = self._buffer
        if not buffer and len(data) >= HEADER_SIZE:
            # Fast path: the read is exactly one whole frame, as a client waiting for each reply sends.
            size = _unpack_header(data)[0]
            if size == len(data) - HEADER_SIZE and size <= self.max_size:
                return [data[HEADER_SIZE:]]
        buffer += data
        frames: list[bytes] = []
        start = 0
        end = len(buffer)
        while end - start >= HEADER_SIZE:
            size = _unpack_header(buffer, start)[0]
            if size > self.max_size:
                raise ProtocolViolation(CloseCode.MESSAGE_TOO_BIG, f"expected at most {self.max_size} bytes")
            stop = start + HEADER_SIZE + size
            if stop > end:
                break
            frames.append(bytes(buffer[start + HEADER_SIZE : stop]))
            start = stop
        if start:
            del buffer[:start]
        return frames

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buffer)


def encode_frame(payload: bytes) -> bytes:
    return _pack_header(len(payload)) + payload


class LengthPrefixFramer(FrameDecoder):
    """The raw TCP gate's :class:`~gameserver.protocol.framing.Framer`: length-prefixed frames both ways."""

    __slots__ = ()

    wire = Wire.LENGTH_PREFIX
    half_close = True  # a client may send its requests and shut its side (as `nc` does): it still gets the replies
    output = NO_OUTPUT
    done = False
    left = False

    def buffered(self) -> int:
        return len(self._buffer)

    def binary(self, payload: bytes) -> bytes:
        return _pack_header(len(payload)) + payload

    text = binary

    def closing(self, code: int, reason: str) -> bytes | None:
        return None

    def failing(self, code: int, reason: str) -> bytes:
        return b""
