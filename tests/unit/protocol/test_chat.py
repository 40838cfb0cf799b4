"""Chat edge lines (PROTOCOL.md, "Chat edge: line protocol"), driven with bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gameserver.errors import CloseCode, ProtocolViolation
from gameserver.protocol.lines import (
    COMMAND_SIZE,
    DEFAULT_MAX_LINE,
    Command,
    Line,
    LineDecoder,
    command_field,
    encode_body,
    encode_line,
    parse_frame,
    parse_line,
)

PUBLIC = b"PUBLIC    hello, \xe4\xb8\x96\xe7\x95\x8c\r\n"
LOGIN = b"LOGIN     n0nce-abc\r\n"
PING = b"PING      \r\n"


def feed_all(decoder: LineDecoder, data: bytes) -> list[Line]:
    return list(decoder.feed(data))


def violation(decoder: LineDecoder, *chunks: bytes) -> tuple[list[Line], ProtocolViolation]:
    """Feed ``chunks``; return the lines yielded before the violation and the violation."""
    lines: list[Line] = []
    with pytest.raises(ProtocolViolation) as info:
        for chunk in chunks:
            for line in decoder.feed(chunk):
                lines.append(line)
    return lines, info.value


def test_command_fields_are_ten_bytes_left_aligned() -> None:
    assert command_field(Command.PUBLIC) == b"PUBLIC    "
    assert all(len(command_field(command)) == COMMAND_SIZE for command in Command)


def test_encode_server_lines() -> None:
    assert encode_line(Command.OK, b'{"uid":1}') == b'OK        {"uid":1}\r\n'
    assert encode_line(Command.PONG) == b"PONG      \r\n"
    assert encode_line(Command.ERROR, b"rate_limited") == b"ERROR     rate_limited\r\n"
    assert encode_body(Command.FAMILY, b"{}") == b"FAMILY    {}"


def test_one_line_in_one_read() -> None:
    decoder = LineDecoder()
    assert feed_all(decoder, PUBLIC) == [Line(Command.PUBLIC, "hello, 世界")]
    assert decoder.pending == 0


def test_empty_payload() -> None:
    assert feed_all(LineDecoder(), PING) == [Line(Command.PING, "")]


def test_payload_is_kept_as_sent() -> None:
    text = "  spaces kept \t<b>&amp;</b> \u2028 emoji \U0001f600 "
    line = b"PUBLIC    " + text.encode() + b"\r\n"
    assert feed_all(LineDecoder(), line) == [Line(Command.PUBLIC, text)]


@pytest.mark.parametrize("offset", range(1, len(PUBLIC)))
def test_line_split_at_every_offset(offset: int) -> None:
    decoder = LineDecoder()
    assert feed_all(decoder, PUBLIC[:offset]) == []
    assert decoder.pending == offset
    assert feed_all(decoder, PUBLIC[offset:]) == [Line(Command.PUBLIC, "hello, 世界")]
    assert decoder.pending == 0


def test_one_byte_at_a_time() -> None:
    decoder = LineDecoder()
    received: list[Line] = []
    for byte in LOGIN + PUBLIC + PING:
        received += feed_all(decoder, bytes([byte]))
    assert [line.command for line in received] == [Command.LOGIN, Command.PUBLIC, Command.PING]


def test_several_lines_in_one_read() -> None:
    decoder = LineDecoder()
    assert feed_all(decoder, LOGIN + PUBLIC + PING) == [
        Line(Command.LOGIN, "n0nce-abc"),
        Line(Command.PUBLIC, "hello, 世界"),
        Line(Command.PING, ""),
    ]


def test_two_lines_and_part_of_a_third() -> None:
    decoder = LineDecoder()
    assert len(feed_all(decoder, LOGIN + PING + PUBLIC[:12])) == 2
    assert decoder.pending == 12
    assert feed_all(decoder, PUBLIC[12:]) == [Line(Command.PUBLIC, "hello, 世界")]


def test_line_at_the_limit_is_accepted() -> None:
    decoder = LineDecoder(64)
    line = b"PUBLIC    " + b"x" * (64 - COMMAND_SIZE - 2) + b"\r\n"
    assert len(line) == 64
    assert feed_all(decoder, line) == [Line(Command.PUBLIC, "x" * 52)]


def test_line_at_the_limit_split_before_the_lf() -> None:
    decoder = LineDecoder(64)
    line = b"PUBLIC    " + b"x" * 52 + b"\r\n"
    assert feed_all(decoder, line[:-1]) == []
    assert feed_all(decoder, line[-1:]) == [Line(Command.PUBLIC, "x" * 52)]


def test_one_byte_over_the_limit() -> None:
    line = b"PUBLIC    " + b"x" * 53 + b"\r\n"
    assert len(line) == 65
    _, exc = violation(LineDecoder(64), line)
    assert exc.close_code == CloseCode.MESSAGE_TOO_BIG


def test_over_the_limit_is_detected_without_the_terminator() -> None:
    decoder = LineDecoder(64)
    assert feed_all(decoder, b"PUBLIC    " + b"x" * 52) == []  # could still end here
    _, exc = violation(decoder, b"x")
    assert exc.close_code == CloseCode.MESSAGE_TOO_BIG
    _, exc = violation(LineDecoder(64), b"x" * 100_000)  # one huge read, never buffered
    assert exc.close_code == CloseCode.MESSAGE_TOO_BIG


def test_default_limit_is_4096_with_crlf() -> None:
    decoder = LineDecoder()
    assert decoder.max_line == DEFAULT_MAX_LINE == 4096
    ok = b"PUBLIC    " + b"y" * (4096 - 12) + b"\r\n"
    assert len(feed_all(decoder, ok)) == 1
    _, exc = violation(LineDecoder(), b"PUBLIC    " + b"y" * (4096 - 11) + b"\r\n")
    assert exc.close_code == CloseCode.MESSAGE_TOO_BIG


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"PUBLIC    hi\n", CloseCode.INVALID_DATA),  # bare LF
        (b"\n", CloseCode.INVALID_DATA),
        (b"PUBLIC    a\rb\r\n", CloseCode.INVALID_DATA),  # lone CR
        (b"PUBLIC    a\r\r\n", CloseCode.INVALID_DATA),
        (b"PUBLIC    \xff\xfe\r\n", CloseCode.INVALID_DATA),  # not UTF-8
        (b"PUBLIC    \xe4\xb8\r\n", CloseCode.INVALID_DATA),  # truncated UTF-8
        (b"PING\r\n", CloseCode.PROTOCOL_ERROR),  # shorter than the command field
        (b"\r\n", CloseCode.PROTOCOL_ERROR),
        (b"SHOUT     hi\r\n", CloseCode.PROTOCOL_ERROR),  # unknown command
        (b"public    hi\r\n", CloseCode.PROTOCOL_ERROR),  # lower case
        (b"  PUBLIC  hi\r\n", CloseCode.PROTOCOL_ERROR),  # not left-aligned
        (b"PUBLIC\x00\x00\x00\x00hi\r\n", CloseCode.PROTOCOL_ERROR),  # not space-padded
        (b"OK        {}\r\n", CloseCode.PROTOCOL_ERROR),  # a server command
    ],
)
def test_violations(data: bytes, code: CloseCode) -> None:
    _, exc = violation(LineDecoder(), data)
    assert exc.close_code == code


def test_lone_cr_is_detected_before_the_line_ends() -> None:
    _, exc = violation(LineDecoder(), b"PUBLIC    a\rb")
    assert exc.close_code == CloseCode.INVALID_DATA


def test_lines_before_a_violation_are_yielded_whatever_the_split() -> None:
    data = PING + PUBLIC + b"NOPE      x\r\n" + PING
    for offset in range(len(data) + 1):
        lines, exc = violation(LineDecoder(), data[:offset], data[offset:])
        assert [line.command for line in lines] == [Command.PING, Command.PUBLIC]
        assert exc.close_code == CloseCode.PROTOCOL_ERROR


def test_frames() -> None:
    assert parse_frame(b"PUBLIC    hi there") == Line(Command.PUBLIC, "hi there")
    assert parse_frame(b"PING      ") == Line(Command.PING, "")
    assert parse_frame(b"FAMILY    " + b"z" * (4096 - 10)) == Line(Command.FAMILY, "z" * 4086)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"PUBLIC    " + b"z" * (4096 - 9), CloseCode.MESSAGE_TOO_BIG),  # the frame counts, no CRLF
        (b"PUBLIC    hi\r\n", CloseCode.INVALID_DATA),
        (b"PUBLIC    a\nb", CloseCode.INVALID_DATA),
        (b"PUBLIC    a\rb", CloseCode.INVALID_DATA),
        (b"PUBLIC    \xc3", CloseCode.INVALID_DATA),
        (b"PING", CloseCode.PROTOCOL_ERROR),
        (b"", CloseCode.PROTOCOL_ERROR),
        (b"WHISPER   x", CloseCode.PROTOCOL_ERROR),
    ],
)
def test_frame_violations(frame: bytes, code: CloseCode) -> None:
    with pytest.raises(ProtocolViolation) as info:
        parse_frame(frame)
    assert info.value.close_code == code


def test_parse_line_needs_the_command_field() -> None:
    with pytest.raises(ProtocolViolation):
        parse_line(b"LOGIN")


def test_limit_below_one_empty_line_is_refused() -> None:
    with pytest.raises(ValueError):
        LineDecoder(11)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=8), st.integers(min_value=12, max_value=300))
def test_random_bytes_raise_nothing_but_protocol_violation(chunks: list[bytes], max_line: int) -> None:
    decoder = LineDecoder(max_line)
    try:
        for chunk in chunks:
            for line in decoder.feed(chunk):
                assert line.command in Command
        assert decoder.pending <= max_line
    except ProtocolViolation:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([LOGIN, PUBLIC, PING, b"FAMILY    x\r\n"]), max_size=6), st.data())
def test_valid_lines_decode_the_same_whatever_the_split(lines: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(lines)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    decoder = LineDecoder()
    received: list[Line] = []
    previous = 0
    for cut in [*cuts, len(stream)]:
        received += feed_all(decoder, stream[previous:cut])
        previous = cut
    assert received == [parse_line(line[:-2]) for line in lines]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_frames_raise_nothing_but_protocol_violation(frame: bytes) -> None:
    try:
        parse_frame(frame, 128)
    except ProtocolViolation:
        pass
