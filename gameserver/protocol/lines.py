"""Chat edge lines (PROTOCOL.md, "Chat edge: line protocol"): bytes <-> :class:`Line`, no I/O.

A line is a 10-byte command field (upper-case ASCII, left-aligned, space-padded), a UTF-8 payload without
CR or LF, then CRLF. On raw TCP the lines arrive as a byte stream (:class:`LineDecoder`); on WebSocket
each text frame is one line without the CRLF (:func:`parse_frame`). The limit counts what the client
sends: command field + payload + CRLF on TCP, the frame on WebSocket.

Every way a client can break the contract raises :class:`ProtocolViolation`: 1009 for a line over the
limit (detected before buffering more than the limit), 1007 for a payload that is not UTF-8 or holds a CR or
LF, 1002 for a line shorter than the command field or an unknown command.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from gameserver.errors import CloseCode, ProtocolViolation
from gameserver.protocol.framing import NO_OUTPUT, Wire

COMMAND_SIZE = 10
CRLF = b"\r\n"
DEFAULT_MAX_LINE = 4096
MIN_MAX_LINE = COMMAND_SIZE + len(CRLF)


class Command(StrEnum):
    # client -> server
    LOGIN = "LOGIN"
    PUBLIC = "PUBLIC"
    FAMILY = "FAMILY"
    PING = "PING"
    HISTORY = "HISTORY"  # an extension (docs/PROTOCOL.md, "Chat history")
    # server -> client (PUBLIC, FAMILY and HISTORY go both ways)
    OK = "OK"
    PONG = "PONG"
    ERROR = "ERROR"


CLIENT_COMMANDS = (Command.LOGIN, Command.PUBLIC, Command.FAMILY, Command.PING, Command.HISTORY)


def command_field(command: Command) -> bytes:
    """The 10-byte field of ``command``: ``b"PUBLIC    "``."""
    return command.value.encode("ascii").ljust(COMMAND_SIZE)


_FIELDS = {command: command_field(command) for command in Command}
_CLIENT_FIELDS = {_FIELDS[command]: command for command in CLIENT_COMMANDS}


@dataclass(frozen=True, slots=True)
class Line:
    """One client line: its command and its payload, decoded (``""`` when empty)."""

    command: Command
    payload: str


def parse_line(line: bytes) -> Line:
    """Parse one line without its terminator; the caller has checked the length and the absence of CR/LF.

    Raises:
        ProtocolViolation: shorter than the command field (1002), unknown command (1002), payload not
            UTF-8 (1007).
    """
    if len(line) < COMMAND_SIZE:
        raise ProtocolViolation(
            CloseCode.PROTOCOL_ERROR, f"expected a {COMMAND_SIZE}-byte command field, got {len(line)} bytes"
        )
    command = _CLIENT_FIELDS.get(line[:COMMAND_SIZE])
    if command is None:
        raise ProtocolViolation(CloseCode.PROTOCOL_ERROR, f"unknown command {line[:COMMAND_SIZE]!r}")
    try:
        payload = line[COMMAND_SIZE:].decode()
    except UnicodeDecodeError:
        raise ProtocolViolation(CloseCode.INVALID_DATA, "payload is not UTF-8") from None
    return Line(command, payload)


class LineDecoder:
    """Split a raw TCP byte stream into :class:`Line` values.

    Args:
        max_line: the largest line accepted, counting the command field, the payload and the CRLF. A
            longer line raises :class:`ProtocolViolation` (1009) as soon as more than ``max_line`` bytes
            of it are known, so no more than that is kept between reads.
    """

    __slots__ = ("_buffer", "_start", "_checked", "max_line")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        if max_line < MIN_MAX_LINE:
            raise ValueError(f"max_line must be at least {MIN_MAX_LINE}")
        self.max_line = max_line
        self._buffer = bytearray()
        self._start = 0  # where the next line begins in the buffer
        self._checked = 0  # bytes from there already known to hold no CR or LF

    def feed(self, data: bytes) -> Iterator[Line]:
        """Add received bytes; iterate over every line now complete, in order.

        The lines before a violation are yielded first, then :class:`ProtocolViolation` is raised, so the
        outcome does not depend on how the stream was cut into reads. The caller closes the connection.
        """
        self._buffer += data
        return self._lines()

    def _lines(self) -> Iterator[Line]:
        buffer = self._buffer
        end = len(buffer)
        limit = self.max_line - len(CRLF)  # longest command field + payload
        start = self._start
        scan = start + self._checked
        while True:
            lf = buffer.find(b"\n", scan)
            stop = lf if lf >= 0 else end
            cr = buffer.find(b"\r", scan, stop)
            if cr >= 0 and cr + 1 < stop:  # a CR not followed by the LF (nor by the end of what we have)
                raise ProtocolViolation(CloseCode.INVALID_DATA, "lone CR in a line")
            if lf < 0:
                # No LF yet; a CR at the very end may be the first half of a CRLF still on its way.
                pending = end - start - (1 if cr >= 0 else 0)
                if pending > limit:
                    raise ProtocolViolation(
                        CloseCode.MESSAGE_TOO_BIG, f"expected lines of at most {self.max_line} bytes"
                    )
                self._checked = pending
                break
            if cr < 0 or cr != lf - 1:
                raise ProtocolViolation(CloseCode.INVALID_DATA, "bare LF in a line")
            if cr - start > limit:
                raise ProtocolViolation(CloseCode.MESSAGE_TOO_BIG, f"expected lines of at most {self.max_line} bytes")
            line = parse_line(bytes(buffer[start:cr]))
            start = scan = self._start = lf + 1
            self._checked = 0
            yield line
        if start:
            del buffer[:start]
            self._start = 0

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete line."""
        return len(self._buffer) - self._start


def parse_frame(frame: bytes, max_line: int = DEFAULT_MAX_LINE) -> Line:
    """Parse one WebSocket text frame: one line without the CRLF.

    Raises:
        ProtocolViolation: frame over ``max_line`` bytes (1009), holding a CR or LF (1007), or any
            violation of :func:`parse_line`.
    """
    if len(frame) > max_line:
        raise ProtocolViolation(CloseCode.MESSAGE_TOO_BIG, f"expected frames of at most {max_line} bytes")
    if b"\r" in frame or b"\n" in frame:
        raise ProtocolViolation(CloseCode.INVALID_DATA, "CR or LF in a chat frame")
    return parse_line(frame)


def encode_body(command: Command, payload: bytes = b"") -> bytes:
    """A server line without its CRLF: what a WebSocket text frame carries."""
    return _FIELDS[command] + payload


def encode_line(command: Command, payload: bytes = b"") -> bytes:
    """A server line with its CRLF, for raw TCP."""
    return _FIELDS[command] + payload + CRLF


class LineFramer(LineDecoder):
    """The raw TCP chat edge's :class:`~gameserver.protocol.framing.Framer`: CRLF lines both ways."""

    __slots__ = ()

    wire = Wire.LINES
    half_close = False
    output = NO_OUTPUT
    done = False
    left = False

    def buffered(self) -> int:
        return len(self._buffer) - self._start

    def binary(self, payload: bytes) -> bytes:
        return payload + CRLF

    text = binary

    def closing(self, code: int, reason: str) -> bytes | None:
        return None

    def failing(self, code: int, reason: str) -> bytes:
        return b""
