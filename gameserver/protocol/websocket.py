"""WebSocket framing after the opening handshake (RFC 6455, 5 and 7): bytes <-> messages, server side.

websockets' sans-I/O ``ServerProtocol`` still does the HTTP upgrade (``gameserver/drivers/upgrade.py``); once it
has answered 101, :class:`WebSocketCodec` takes the byte stream over. It does the per-message work of
websockets' ``Protocol`` without building a ``Frame`` object, running a parser generator and collecting a
list of writes for every message: on the common path a read holds one whole masked frame, parsed in place.

Everything RFC 6455 requires of a server is kept: client frames must be masked; reserved bits (no extension
is negotiated) and unknown opcodes are errors; control frames are final and at most 125 bytes; fragments
are reassembled, with control frames allowed between them; a ping is answered with a pong; a close frame's
code and UTF-8 reason are checked and the close is echoed, after which the server closes the TCP connection
(7.1.1). Violations raise :class:`ProtocolViolation` with the close code the driver sends: 1002 for framing
errors, 1007 for a text message or close reason that is not UTF-8, 1009 for a message over ``max_size``
(checked from the frame header, before its payload is buffered, as websockets' ``Frame.parse`` does).

Like the rest of ``protocol/``, nothing here awaits or touches a socket: the driver feeds received bytes to
:meth:`WebSocketCodec.feed`, passes on the messages it returns, writes :attr:`WebSocketCodec.output` and
closes the connection once :attr:`WebSocketCodec.done` is set.
"""

from __future__ import annotations

from gameserver.errors import CloseCode, ProtocolViolation
from gameserver.protocol.framing import Wire

try:  # websockets' C helper; its pure-Python twin is the fallback, as in websockets.frames
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - depends on how websockets was built
    from websockets.utils import apply_mask

DEFAULT_MAX_SIZE = 64 * 1024
MAX_CONTROL_PAYLOAD = 125  # RFC 6455, 5.5

FIN = 0x80
RSV = 0x70  # RSV1-3: must be 0 without a negotiated extension (5.2)
OPCODE = 0x0F
MASKED = 0x80
LENGTH = 0x7F
LENGTH_16 = 126
LENGTH_64 = 127
MASK_SIZE = 4


# Opcodes (5.2) as plain ints: the hot path compares them, and an IntEnum member lookup costs ~70 ns.
OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

# Codes a peer may put in a close frame (7.4.1 and the IANA registry), as websockets' EXTERNAL_CLOSE_CODES;
# 1005, 1006 and 1015 are for reporting only and never sent. 3000-4999 belong to libraries and applications.
EXTERNAL_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})
APPLICATION_CLOSE_CODES = range(3000, 5000)

_FIN_BINARY = FIN | OP_BINARY
_SHORT_HEADER = 2 + MASK_SIZE  # a masked frame with a 7-bit length

# Server frames are never masked (5.1); headers of short final frames are precomputed for the hot path.
_BINARY_HEADERS = tuple(bytes((FIN | OP_BINARY, size)) for size in range(LENGTH_16))
_TEXT_HEADERS = tuple(bytes((FIN | OP_TEXT, size)) for size in range(LENGTH_16))


def _error(message: str) -> ProtocolViolation:
    return ProtocolViolation(CloseCode.PROTOCOL_ERROR, message)


class WebSocketCodec:
    """The data-transfer phase of one server-side WebSocket connection.

    Args:
        max_size: largest message accepted (all fragments together); a frame that would take a message
            past it raises :class:`ProtocolViolation` (1009) from its header alone.

    Attributes:
        output: control frames to write (pongs, the close echo), in order; the driver writes and clears it.
        close_sent: a close frame went out (:meth:`close`, :meth:`fail` or the echo); data frames received
            after it are discarded and nothing but the closing handshake may be sent (5.5.1).
        done: the closing handshake is over, or the connection failed: the server closes the TCP
            connection once :attr:`output` is written (7.1.1), and later bytes are ignored.
    """

    __slots__ = ("max_size", "output", "close_sent", "done", "left", "_buffer", "_fragments", "_fragment_text", "_size")

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.max_size = max_size
        self.output: list[bytes] = []
        self.close_sent = False
        self.done = False
        self.left = False  # the peer's close frame said 1000: it ended the conversation on purpose
        self._buffer = bytearray()
        self._fragments: list[bytes] | None = None  # the fragments of an unfinished message
        self._fragment_text = False
        self._size = 0  # bytes in _fragments

    def feed(self, data: bytes) -> list[bytes | str]:
        """Add received bytes; return every message now complete: ``bytes`` (binary) or ``str`` (text).

        Raises:
            ProtocolViolation: the peer broke RFC 6455 (close code 1002, 1007 or 1009). The connection
                cannot go on; send :meth:`fail`'s frame and close it.
        """
        buffer = self._buffer
        if not buffer and self._fragments is None and not self.close_sent and len(data) > _SHORT_HEADER:
            # Fast path: the read is exactly one whole, short, final binary frame, as most requests are.
            size = len(data) - _SHORT_HEADER
            if data[0] == _FIN_BINARY and data[1] == MASKED | size and size < LENGTH_16 and size <= self.max_size:
                return [apply_mask(data[_SHORT_HEADER:], data[2:_SHORT_HEADER])]
        if self.done:
            return []
        view: bytes | bytearray = data
        if buffer:
            buffer += data
            view = buffer
        messages: list[bytes | str] = []
        pos = 0
        end = len(view)
        while end - pos >= 2:
            first = view[pos]
            second = view[pos + 1]
            if first & RSV:
                raise _error("reserved bits must be 0")
            if not second & MASKED:
                raise _error("client frames must be masked")
            opcode = first & OPCODE
            length = second & LENGTH
            start = pos + 2
            if length >= LENGTH_16:
                if length == LENGTH_16:
                    if end - start < 2:
                        break
                    length = int.from_bytes(view[start : start + 2], "big")
                    start += 2
                else:
                    if end - start < 8:
                        break
                    length = int.from_bytes(view[start : start + 8], "big")
                    start += 8
                    if length >> 63:
                        raise _error("the most significant bit of a 64-bit length must be 0")
            if opcode >= OP_CLOSE:
                if opcode > OP_PONG:
                    raise _error(f"unknown opcode {opcode:#x}")
                if not first & FIN:
                    raise _error("control frames must not be fragmented")
                if length > MAX_CONTROL_PAYLOAD:
                    raise _error(f"control frames carry at most {MAX_CONTROL_PAYLOAD} bytes")
            elif opcode > OP_BINARY:
                raise _error(f"unknown opcode {opcode:#x}")
            else:
                if (opcode == OP_CONT) is (self._fragments is None):
                    raise _error(
                        "unexpected continuation frame" if opcode == OP_CONT else "expected a continuation frame"
                    )
                if self._size + length > self.max_size:
                    raise ProtocolViolation(CloseCode.MESSAGE_TOO_BIG, f"expected at most {self.max_size} bytes")
            stop = start + MASK_SIZE + length
            if stop > end:
                break
            payload = apply_mask(view[start + MASK_SIZE : stop], view[start : start + MASK_SIZE])
            pos = stop
            if opcode == OP_BINARY and first & FIN and not self.close_sent:
                messages.append(payload)  # the common case: one whole binary message
            else:
                self._frame(opcode, first & FIN, payload, messages)
                if self.done:
                    break
        if view is buffer:
            del buffer[:pos]
        elif pos < end and not self.done:
            buffer += view[pos:]
        return messages

    def _frame(self, opcode: int, fin: int, payload: bytes, messages: list[bytes | str]) -> None:
        if opcode == OP_PING:
            if not self.close_sent:
                self.output.append(encode_frame(OP_PONG, payload))
            return
        if opcode == OP_PONG:
            return
        if opcode == OP_CLOSE:
            self._close_received(payload)
            return
        fragments = self._fragments  # feed() checked that CONT frames, and only they, continue a message
        if fragments is not None:
            fragments.append(payload)
            self._size += len(payload)
            if not fin:
                return
            text = self._fragment_text
            payload = b"".join(fragments)
            self._fragments = None
            self._size = 0
        else:
            text = opcode == OP_TEXT
            if not fin:
                self._fragments = [payload]
                self._fragment_text = text
                self._size = len(payload)
                return
        if self.close_sent:
            return  # 1.4: after a close frame, data is discarded
        if text:
            try:
                messages.append(payload.decode())
            except UnicodeDecodeError:
                raise ProtocolViolation(CloseCode.INVALID_DATA, "text message is not UTF-8") from None
        else:
            messages.append(payload)

    def _close_received(self, payload: bytes) -> None:
        if len(payload) == 1:
            raise _error("close frame payload of 1 byte")
        if payload:
            code = int.from_bytes(payload[:2], "big")
            if code not in EXTERNAL_CLOSE_CODES and code not in APPLICATION_CLOSE_CODES:
                raise _error(f"invalid close code {code}")
            self.left = code == CloseCode.NORMAL and not self.close_sent  # its own goodbye, not our echo
            try:
                payload[2:].decode()
            except UnicodeDecodeError:
                raise ProtocolViolation(CloseCode.INVALID_DATA, "close reason is not UTF-8") from None
        if not self.close_sent:
            # 5.5.1: answer with a close frame, echoing the code (websockets echoes the whole payload).
            self.output.append(encode_frame(OP_CLOSE, payload))
            self.close_sent = True
        self.done = True
        self._fragments = None
        self._buffer.clear()

    def close(self, code: int, reason: str = "") -> bytes:
        """Start the closing handshake: the close frame to write (``b""`` if one was already sent).

        The connection stays open until the peer's close frame arrives (:attr:`done`).
        """
        if self.close_sent:
            return b""
        self.close_sent = True
        return encode_close(code, reason)

    def fail(self, code: int, reason: str = "") -> bytes:
        """Fail the connection (7.1.7): the close frame to write, if none was sent yet; then close the socket."""
        frame = self.close(code, reason)
        self.done = True
        return frame

    # As a connection's Framer (gameserver/protocol/framing.py).

    wire = Wire.WEBSOCKET
    half_close = False

    def buffered(self) -> int:
        """Bytes of a frame begun, or a fragmented message begun (1 when only whole fragments are held)."""
        return len(self._buffer) or (self._fragments is not None)

    def binary(self, payload: bytes) -> bytes:
        return b"" if self.close_sent else encode_binary(payload)

    def text(self, payload: bytes) -> bytes:
        if self.close_sent:
            return b""
        size = len(payload)
        return _TEXT_HEADERS[size] + payload if size < LENGTH_16 else encode_frame(OP_TEXT, payload)

    def closing(self, code: int, reason: str) -> bytes | None:
        return self.close(code, reason)

    failing = fail


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked server frame."""
    size = len(payload)
    if size < LENGTH_16:
        header = bytes((FIN | opcode, size))
    elif size < 1 << 16:
        header = bytes((FIN | opcode, LENGTH_16)) + size.to_bytes(2, "big")
    else:
        header = bytes((FIN | opcode, LENGTH_64)) + size.to_bytes(8, "big")
    return header + payload


def encode_binary(payload: bytes) -> bytes:
    size = len(payload)
    if size < LENGTH_16:
        return _BINARY_HEADERS[size] + payload
    return encode_frame(OP_BINARY, payload)


def encode_text(text: str) -> bytes:
    payload = text.encode()
    size = len(payload)
    if size < LENGTH_16:
        return _TEXT_HEADERS[size] + payload
    return encode_frame(OP_TEXT, payload)


def encode_close(code: int, reason: str = "") -> bytes:
    """A close frame; the reason is cut to fit the 125-byte control payload, on a character boundary."""
    data = reason.encode()
    if len(data) > MAX_CONTROL_PAYLOAD - 2:
        data = data[: MAX_CONTROL_PAYLOAD - 2].decode(errors="ignore").encode()
    return encode_frame(OP_CLOSE, code.to_bytes(2, "big") + data)
