"""WebSocket framing after the handshake (RFC 6455, 5 and 7), server side: bytes in, messages and control
frames out. Client frames are built with websockets' own ``Frame.serialize`` where they are well-formed,
by hand where they are not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Close, Frame, Opcode

from gameserver.errors import CloseCode, ProtocolViolation
from gameserver.protocol.websocket import (
    DEFAULT_MAX_SIZE,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    WebSocketCodec,
    encode_binary,
    encode_close,
    encode_frame,
    encode_text,
)

MASK = b"\x37\xfa\x21\x3d"
PAYLOAD = b"\x83\xa2id\x01\xa2fn\xa8sys.echo\xa4args\x80"


def frame(opcode: int, data: bytes, *, fin: bool = True) -> bytes:
    """A well-formed masked client frame."""
    return Frame(Opcode(opcode), data, fin=fin).serialize(mask=True)


def raw(first: int, data: bytes = b"", *, masked: bool = True, length: bytes | None = None) -> bytes:
    """A client frame exactly as given: first byte, then length (7-bit unless ``length``), mask, payload."""
    if length is None:
        head = bytes([first, (0x80 if masked else 0) | len(data)])
    else:
        head = bytes([first, (0x80 if masked else 0) | {2: 126, 8: 127}[len(length)]]) + length
    if not masked:
        return head + data
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(data))


def violation(codec: WebSocketCodec, data: bytes) -> ProtocolViolation:
    with pytest.raises(ProtocolViolation) as caught:
        codec.feed(data)
    return caught.value


def close_payload(code: int, reason: str = "") -> bytes:
    return code.to_bytes(2, "big") + reason.encode()


# Data frames


def test_default_limit_is_64_kib() -> None:
    assert WebSocketCodec().max_size == DEFAULT_MAX_SIZE == 64 * 1024


def test_binary_frame_is_a_bytes_message() -> None:
    codec = WebSocketCodec()
    assert codec.feed(frame(OP_BINARY, PAYLOAD)) == [PAYLOAD]
    assert codec.output == [] and not codec.close_sent and not codec.done


def test_text_frame_is_a_str_message() -> None:
    assert WebSocketCodec().feed(frame(OP_TEXT, '{"a":"é"}'.encode())) == ['{"a":"é"}']


def test_empty_messages() -> None:
    codec = WebSocketCodec()
    assert codec.feed(frame(OP_BINARY, b"") + frame(OP_TEXT, b"")) == [b"", ""]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_every_length_encoding(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    encoded = frame(OP_BINARY, data)
    assert len(encoded) == size + 4 + (2 if size < 126 else 4 if size < 65536 else 10)
    assert WebSocketCodec(max_size=1 << 20).feed(encoded) == [data]


@pytest.mark.parametrize("size", [5, 125, 300, 70000])
def test_frame_split_at_every_offset(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    encoded = frame(OP_BINARY, data)
    offsets = range(1, len(encoded)) if size < 1000 else [*range(1, 20), len(encoded) // 2, len(encoded) - 1]
    for offset in offsets:
        codec = WebSocketCodec(max_size=1 << 20)
        assert codec.feed(encoded[:offset]) == []
        assert codec.feed(encoded[offset:]) == [data], offset


def test_frames_fed_one_byte_at_a_time() -> None:
    codec = WebSocketCodec()
    stream = frame(OP_BINARY, PAYLOAD) + frame(OP_TEXT, b"second") + frame(OP_BINARY, b"x" * 200)
    received: list[bytes | str] = []
    for byte in stream:
        received += codec.feed(bytes([byte]))
    assert received == [PAYLOAD, "second", b"x" * 200]


def test_two_frames_and_part_of_a_third_in_one_read() -> None:
    codec = WebSocketCodec()
    third = frame(OP_BINARY, b"three")
    assert codec.feed(frame(OP_BINARY, b"one") + frame(OP_TEXT, b"two") + third[:7]) == [b"one", "two"]
    assert codec.feed(third[7:]) == [b"three"]


def test_the_mask_is_applied() -> None:
    encoded = raw(0x82, b"abcd")
    assert encoded[6:] != b"abcd"
    assert WebSocketCodec().feed(encoded) == [b"abcd"]


def test_a_length_not_minimally_encoded_is_accepted() -> None:
    # RFC 6455, 5.2 asks senders for the minimal encoding; like websockets, the server does not insist.
    codec = WebSocketCodec()
    assert codec.feed(raw(0x82, b"abc", length=(3).to_bytes(2, "big"))) == [b"abc"]
    assert codec.feed(raw(0x82, b"abc", length=(3).to_bytes(8, "big"))) == [b"abc"]


# Fragmentation (5.4)


def test_fragmented_binary_message() -> None:
    codec = WebSocketCodec()
    assert codec.feed(frame(OP_BINARY, b"one ", fin=False)) == []
    assert codec.feed(frame(OP_CONT, b"two ", fin=False)) == []
    assert codec.feed(frame(OP_CONT, b"three")) == [b"one two three"]


def test_fragmented_text_with_a_character_split_between_fragments() -> None:
    data = "日本".encode()
    codec = WebSocketCodec()
    assert codec.feed(frame(OP_TEXT, data[:2], fin=False) + frame(OP_CONT, data[2:4], fin=False)) == []
    assert codec.feed(frame(OP_CONT, data[4:])) == ["日本"]


def test_control_frames_between_fragments() -> None:
    codec = WebSocketCodec()
    stream = frame(OP_BINARY, b"a", fin=False) + frame(OP_PING, b"p") + frame(OP_PONG, b"") + frame(OP_CONT, b"b")
    assert codec.feed(stream) == [b"ab"]
    assert codec.output == [encode_frame(OP_PONG, b"p")]


def test_fragments_then_a_whole_message() -> None:
    codec = WebSocketCodec()
    stream = frame(OP_TEXT, b"a", fin=False) + frame(OP_CONT, b"b") + frame(OP_BINARY, b"c")
    assert codec.feed(stream) == ["ab", b"c"]


def test_continuation_without_a_message_is_a_protocol_error() -> None:
    assert violation(WebSocketCodec(), frame(OP_CONT, b"x")).close_code == CloseCode.PROTOCOL_ERROR


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY])
def test_new_message_inside_a_fragmented_one_is_a_protocol_error(opcode: int) -> None:
    codec = WebSocketCodec()
    codec.feed(frame(OP_BINARY, b"a", fin=False))
    assert violation(codec, frame(opcode, b"b")).close_code == CloseCode.PROTOCOL_ERROR


# Control frames (5.5)


def test_ping_is_answered_with_a_pong_carrying_its_payload() -> None:
    codec = WebSocketCodec()
    assert codec.feed(frame(OP_PING, b"hello") + frame(OP_PING, b"")) == []
    assert codec.output == [b"\x8a\x05hello", b"\x8a\x00"]


def test_pong_is_ignored() -> None:
    codec = WebSocketCodec()
    assert codec.feed(frame(OP_PONG, b"unsolicited")) == []
    assert codec.output == []


def test_control_frame_of_125_bytes_is_accepted() -> None:
    codec = WebSocketCodec()
    codec.feed(frame(OP_PING, b"x" * 125))
    assert codec.output == [encode_frame(OP_PONG, b"x" * 125)]


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_control_frame_over_125_bytes_is_a_protocol_error(opcode: int) -> None:
    encoded = raw(0x80 | opcode, b"\x03\xe8" + b"x" * 124)  # 126 bytes
    assert violation(WebSocketCodec(), encoded).close_code == CloseCode.PROTOCOL_ERROR


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE])
def test_fragmented_control_frame_is_a_protocol_error(opcode: int) -> None:
    assert violation(WebSocketCodec(), raw(opcode, b"")).close_code == CloseCode.PROTOCOL_ERROR


# Closing handshake (5.5.1, 7)


def test_close_is_echoed_and_ends_the_connection() -> None:
    codec = WebSocketCodec()
    payload = close_payload(1000, "bye")
    assert codec.feed(frame(OP_BINARY, b"before") + frame(OP_CLOSE, payload) + frame(OP_BINARY, b"after")) == [
        b"before"
    ]
    assert codec.output == [encode_frame(OP_CLOSE, payload)]
    assert codec.close_sent and codec.done
    assert codec.feed(frame(OP_BINARY, b"later")) == []


def test_close_without_a_code_is_echoed_empty() -> None:
    codec = WebSocketCodec()
    codec.feed(frame(OP_CLOSE, b""))
    assert codec.output == [b"\x88\x00"] and codec.done


def test_close_inside_a_fragmented_message_drops_the_fragments() -> None:
    codec = WebSocketCodec()
    assert codec.feed(frame(OP_BINARY, b"a", fin=False) + frame(OP_CLOSE, close_payload(1001))) == []
    assert codec.done


def test_close_of_one_byte_is_a_protocol_error() -> None:
    assert violation(WebSocketCodec(), frame(OP_CLOSE, b"\x03")).close_code == CloseCode.PROTOCOL_ERROR


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999])
def test_valid_close_codes(code: int) -> None:
    codec = WebSocketCodec()
    codec.feed(raw(0x88, close_payload(code, "why")))
    assert codec.done and codec.output == [encode_frame(OP_CLOSE, close_payload(code, "why"))]


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_invalid_close_codes_are_a_protocol_error(code: int) -> None:
    assert violation(WebSocketCodec(), raw(0x88, close_payload(code))).close_code == CloseCode.PROTOCOL_ERROR


def test_close_reason_that_is_not_utf8_is_invalid_data() -> None:
    assert violation(WebSocketCodec(), raw(0x88, b"\x03\xe8\xff")).close_code == CloseCode.INVALID_DATA


def test_server_initiated_close() -> None:
    codec = WebSocketCodec()
    sent = codec.close(CloseCode.GOING_AWAY, "server shutting down")
    assert sent == Frame(Opcode.CLOSE, Close(1001, "server shutting down").serialize()).serialize(mask=False)
    assert codec.close_sent and not codec.done
    assert codec.close(CloseCode.NORMAL) == b""  # only one close frame
    # 1.4: until the peer's close arrives, its data is discarded and pings are not answered.
    assert codec.feed(frame(OP_BINARY, b"late") + frame(OP_TEXT, b"late") + frame(OP_PING, b"")) == []
    assert codec.feed(frame(OP_BINARY, b"a", fin=False) + frame(OP_CONT, b"b")) == []
    assert codec.feed(frame(OP_CLOSE, close_payload(1001))) == []
    assert codec.output == [] and codec.done


def test_fail_sends_one_close_frame_and_ends() -> None:
    codec = WebSocketCodec()
    assert codec.fail(CloseCode.INVALID_DATA, "bad") == encode_close(1007, "bad")
    assert codec.done and codec.close_sent
    assert codec.feed(frame(OP_BINARY, b"x")) == []
    closing = WebSocketCodec()
    closing.close(CloseCode.GOING_AWAY)
    assert closing.fail(CloseCode.PROTOCOL_ERROR) == b"" and closing.done


# Protocol errors (1002), invalid data (1007), too big (1009)


def test_unmasked_frame_is_a_protocol_error() -> None:
    caught = violation(WebSocketCodec(), raw(0x82, b"abc", masked=False))
    assert caught.close_code == CloseCode.PROTOCOL_ERROR
    assert caught.message == "client frames must be masked"


@pytest.mark.parametrize("bit", [0x40, 0x20, 0x10])
def test_reserved_bits_are_a_protocol_error(bit: int) -> None:
    # No extension is negotiated (not even permessage-deflate), so RSV1-3 must be 0.
    assert violation(WebSocketCodec(), raw(0x82 | bit, b"abc")).close_code == CloseCode.PROTOCOL_ERROR


@pytest.mark.parametrize("opcode", [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_unknown_opcodes_are_a_protocol_error(opcode: int) -> None:
    caught = violation(WebSocketCodec(), raw(0x80 | opcode, b"abc"))
    assert caught.close_code == CloseCode.PROTOCOL_ERROR
    assert caught.message == f"unknown opcode {opcode:#x}"


def test_64_bit_length_with_the_top_bit_set_is_a_protocol_error() -> None:
    header = bytes([0x82, 0xFF]) + (1 << 63).to_bytes(8, "big")
    assert violation(WebSocketCodec(), header).close_code == CloseCode.PROTOCOL_ERROR


def test_errors_are_found_from_the_header_before_the_payload_arrives() -> None:
    assert violation(WebSocketCodec(), raw(0x83, b"abc")[:2]).close_code == CloseCode.PROTOCOL_ERROR
    assert violation(WebSocketCodec(), raw(0x82, b"abc", masked=False)[:2]).close_code == CloseCode.PROTOCOL_ERROR


def test_text_that_is_not_utf8_is_invalid_data() -> None:
    caught = violation(WebSocketCodec(), frame(OP_TEXT, b"ok \xff"))
    assert caught.close_code == CloseCode.INVALID_DATA
    assert caught.message == "text message is not UTF-8"


def test_fragmented_text_ending_mid_character_is_invalid_data() -> None:
    codec = WebSocketCodec()
    codec.feed(frame(OP_TEXT, "日".encode()[:2], fin=False))
    assert violation(codec, frame(OP_CONT, b"")).close_code == CloseCode.INVALID_DATA


def test_binary_is_not_checked_for_utf8() -> None:
    assert WebSocketCodec().feed(frame(OP_BINARY, b"\xff\xfe")) == [b"\xff\xfe"]


def test_message_of_exactly_the_limit_is_accepted() -> None:
    codec = WebSocketCodec(max_size=300)
    assert codec.feed(frame(OP_BINARY, b"x" * 300)) == [b"x" * 300]
    assert codec.feed(frame(OP_TEXT, b"y" * 200, fin=False) + frame(OP_CONT, b"y" * 100)) == ["y" * 300]


@pytest.mark.parametrize("limit", [64, 125, 126, 300, 70000])
def test_one_byte_over_the_limit_is_too_big_from_the_header_alone(limit: int) -> None:
    encoded = frame(OP_BINARY, b"x" * (limit + 1))
    header = encoded[: 2 + (0 if limit + 1 < 126 else 2 if limit + 1 < 65536 else 8)]
    caught = violation(WebSocketCodec(max_size=limit), header)
    assert caught.close_code == CloseCode.MESSAGE_TOO_BIG
    assert caught.message == f"expected at most {limit} bytes"
    assert violation(WebSocketCodec(max_size=limit), encoded).close_code == CloseCode.MESSAGE_TOO_BIG


def test_fragments_adding_up_to_more_than_the_limit_are_too_big() -> None:
    codec = WebSocketCodec(max_size=100)
    codec.feed(frame(OP_BINARY, b"x" * 60, fin=False))
    assert violation(codec, frame(OP_CONT, b"x" * 41)).close_code == CloseCode.MESSAGE_TOO_BIG


def test_control_frames_do_not_count_towards_the_limit() -> None:
    codec = WebSocketCodec(max_size=64)
    codec.feed(frame(OP_BINARY, b"x" * 60, fin=False) + frame(OP_PING, b"y" * 100))
    assert codec.feed(frame(OP_CONT, b"x" * 4)) == [b"x" * 64]


# Server frames


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
def test_server_frames_match_websockets(size: int) -> None:
    data = b"z" * size
    assert encode_binary(data) == Frame(Opcode.BINARY, data).serialize(mask=False)
    assert encode_text("z" * size) == Frame(Opcode.TEXT, data).serialize(mask=False)
    assert encode_frame(OP_PONG, data[:125]) == Frame(Opcode.PONG, data[:125]).serialize(mask=False)


def test_text_is_sent_as_utf8() -> None:
    assert encode_text("é") == b"\x81\x02\xc3\xa9"


def test_close_reason_is_cut_to_fit_on_a_character_boundary() -> None:
    encoded = encode_close(1009, "é" * 100)  # 200 bytes of reason; a control frame holds 125 in all
    assert encoded[:2] == b"\x88\x7c"  # code + 61 two-byte characters: a 62nd would not fit
    assert Close.parse(encoded[2:]) == Close(1009, "é" * 61)


# Properties (hypothesis): whatever a client sends, in whatever reads, the codec returns messages or raises one
# ProtocolViolation with a documented close code (1002 framing, 1007 not UTF-8, 1009 too big); well-formed
# messages come out as sent, however they are fragmented and split across reads, pings answered in order.

VIOLATION_CODES = (CloseCode.PROTOCOL_ERROR, CloseCode.INVALID_DATA, CloseCode.MESSAGE_TOO_BIG)
FUZZ_MAX_SIZE = 64


def feed_all(codec: WebSocketCodec, chunks: list[bytes]) -> list[bytes | str]:
    messages: list[bytes | str] = []
    for chunk in chunks:
        messages += codec.feed(chunk)
    return messages


def random_frame(first: int, masked: bool, length_kind: int, payload: bytes, declared: int | None = None) -> bytes:
    """A client frame whose header fields are drawn at random: any first byte, any length form."""
    size = len(payload) if declared is None else declared
    if length_kind == 0 and size < 126:
        head = bytes([first, (0x80 if masked else 0) | size])
    elif length_kind == 1 and size < 2**16:
        head = bytes([first, (0x80 if masked else 0) | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([first, (0x80 if masked else 0) | 127]) + size.to_bytes(8, "big")
    return head + (MASK if masked else b"") + payload


random_frames = st.builds(
    random_frame,
    st.integers(0, 255),
    st.booleans() | st.just(True),
    st.integers(0, 2),
    st.binary(max_size=80),
    st.none() | st.integers(0, 2**63 - 1),
)


@given(st.lists(random_frames, max_size=6), st.binary(max_size=40), st.data())
def test_random_frames_raise_nothing_but_documented_violations(
    frames: list[bytes], noise: bytes, data: st.DataObject
) -> None:
    stream = b"".join(frames) + noise
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=6))))
    codec = WebSocketCodec(max_size=FUZZ_MAX_SIZE)
    try:
        for start, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True):
            for message in codec.feed(stream[start:stop]):
                assert type(message) in (bytes, str)
                assert len(message) <= FUZZ_MAX_SIZE
    except ProtocolViolation as exc:
        assert exc.close_code in VIOLATION_CODES


@given(st.lists(st.binary(max_size=60), max_size=8))
def test_random_reads_raise_nothing_but_documented_violations(chunks: list[bytes]) -> None:
    try:
        feed_all(WebSocketCodec(max_size=FUZZ_MAX_SIZE), chunks)
    except ProtocolViolation as exc:
        assert exc.close_code in VIOLATION_CODES


client_messages = st.lists(
    st.tuples(st.text(max_size=30) | st.binary(max_size=30), st.integers(1, 3), st.booleans()), max_size=5
)


@given(client_messages, st.data())
def test_messages_come_out_as_sent_whatever_the_fragments_and_reads(
    messages: list[tuple[str | bytes, int, bool]], data: st.DataObject
) -> None:
    stream = b""
    pongs: list[bytes] = []
    for index, (message, pieces, ping_inside) in enumerate(messages):
        body = message.encode() if isinstance(message, str) else message
        step = max(1, -(-len(body) // pieces))
        parts = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
        for number, part in enumerate(parts):
            opcode = (OP_TEXT if isinstance(message, str) else OP_BINARY) if number == 0 else OP_CONT
            stream += frame(opcode, part, fin=number == len(parts) - 1)
            if ping_inside and number == 0:
                ping = b"p%d" % index  # control frames may come between fragments (5.4)
                stream += frame(OP_PING, ping)
                pongs.append(encode_frame(OP_PONG, ping))
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=8))))
    codec = WebSocketCodec()
    chunks = [stream[start:stop] for start, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert feed_all(codec, chunks) == [message for message, _, _ in messages]
    assert codec.output == pongs
