"""The framers a connection owns (gameserver/protocol/framing.py): what each reports as buffered, how it frames a
message, how it says goodbye. Bytes in, bytes out: no loop, no socket."""

from __future__ import annotations

import pytest
from websockets.frames import Close, Frame, Opcode

from gameserver.errors import CloseCode
from gameserver.protocol.frames import LengthPrefixFramer, encode_frame
from gameserver.protocol.framing import Framer, Wire
from gameserver.protocol.handshake import HandshakeFramer
from gameserver.protocol.lines import Command, Line, LineFramer
from gameserver.protocol.websocket import WebSocketCodec, encode_binary, encode_text


def masked(opcode: Opcode, payload: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, payload, fin=fin).serialize(mask=True)


def framers() -> list[Framer]:
    return [LengthPrefixFramer(1024), LineFramer(1024), WebSocketCodec(1024), HandshakeFramer(1024)]


@pytest.mark.parametrize("framer", framers(), ids=lambda f: type(f).__name__)
def test_a_fresh_framer_holds_nothing_and_says_nothing(framer: Framer) -> None:
    assert framer.buffered() == 0 and not framer.output and not framer.done


def test_length_prefix_buffers_a_frame_begun_until_it_completes() -> None:
    framer = LengthPrefixFramer(1024)
    frame = encode_frame(b"abcdef")
    assert framer.feed(frame[:5]) == [] and framer.buffered() == 5
    assert framer.feed(frame[5:] + frame[:2]) == [b"abcdef"] and framer.buffered() == 2
    assert framer.binary(b"xy") == framer.text(b"xy") == encode_frame(b"xy")
    assert framer.wire is Wire.LENGTH_PREFIX and framer.half_close
    assert framer.closing(CloseCode.GOING_AWAY, "bye") is None and framer.failing(CloseCode.PROTOCOL_ERROR, "") == b""


def test_lines_buffer_a_line_begun_until_its_crlf() -> None:
    framer = LineFramer(1024)
    assert list(framer.feed(b"PING      \r\nPUB")) == [Line(Command.PING, "")]
    assert framer.buffered() == 3
    assert list(framer.feed(b"LIC    hi\r\n")) == [Line(Command.PUBLIC, "hi")] and framer.buffered() == 0
    assert framer.text(b"PONG      ") == b"PONG      \r\n" and framer.wire is Wire.LINES and not framer.half_close
    assert framer.closing(CloseCode.GOING_AWAY, "bye") is None


def test_websocket_counts_a_frame_begun_and_a_fragmented_message_begun() -> None:
    codec = WebSocketCodec(1024)
    frame = masked(Opcode.BINARY, b"hello")
    assert codec.feed(frame[:3]) == [] and codec.buffered() == 3
    assert codec.feed(frame[3:]) == [b"hello"] and codec.buffered() == 0
    assert codec.feed(masked(Opcode.TEXT, b"he", fin=False)) == [] and codec.buffered() > 0  # whole fragments held
    assert codec.feed(masked(Opcode.CONT, b"llo")) == ["hello"] and codec.buffered() == 0


def test_websocket_frames_messages_until_it_says_goodbye() -> None:
    codec = WebSocketCodec(1024)
    assert codec.binary(b"ab") == encode_binary(b"ab") and codec.text(b"ab") == encode_text("ab")
    goodbye = codec.closing(CloseCode.GOING_AWAY, "server shutting down")
    assert goodbye == Frame(Opcode.CLOSE, Close(1001, "server shutting down").serialize()).serialize(mask=False)
    assert codec.binary(b"ab") == codec.text(b"ab") == b""  # no data frame after a close frame (RFC 6455 5.5.1)
    assert codec.closing(CloseCode.GOING_AWAY, "again") == b"" and not codec.done


def test_websocket_failing_closes_at_once() -> None:
    codec = WebSocketCodec(1024)
    assert codec.failing(CloseCode.POLICY_VIOLATION, "slow") != b"" and codec.done


def test_the_handshake_yields_the_request_and_keeps_what_follows_for_the_codec() -> None:
    framer = HandshakeFramer(1024)
    head = (
        b"GET /gate HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    first = masked(Opcode.BINARY, b"x")
    assert framer.feed(head[:20]) == []
    [request] = framer.feed(head[20:] + first)
    assert request.path == "/gate" and framer.rest == first
    assert framer.accept(request).status_code == 101
    assert b"".join(framer.data_to_send()).startswith(b"HTTP/1.1 101")


def test_a_request_that_is_not_http_ends_the_framing() -> None:
    framer = HandshakeFramer(1024)
    assert framer.feed(b"\x00\x01garbage\r\n\r\n") == []
    assert framer.done  # websockets gives up on it: the connection writes what it has to say, then closes
