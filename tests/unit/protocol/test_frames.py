"""Raw TCP gate framing (PROTOCOL.md, "Listeners"): 4-byte big-endian length, then the payload."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gameserver.errors import CloseCode, ProtocolViolation
from gameserver.protocol.frames import DEFAULT_MAX_FRAME, HEADER_SIZE, FrameDecoder, encode_frame

PAYLOAD = b"\x83\xa2id\x01\xa2fn\xa8sys.echo\xa4args\x80"


def test_encode_frame_prefixes_the_big_endian_length() -> None:
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"") == b"\x00\x00\x00\x00"
    assert encode_frame(b"x" * 258)[:HEADER_SIZE] == b"\x00\x00\x01\x02"


def test_default_limit_is_64_kib() -> None:
    assert DEFAULT_MAX_FRAME == 64 * 1024
    assert FrameDecoder().max_size == DEFAULT_MAX_FRAME


def test_one_frame_in_one_read() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(PAYLOAD)) == [PAYLOAD]
    assert decoder.pending == 0


@pytest.mark.parametrize("offset", range(1, len(encode_frame(PAYLOAD))))
def test_frame_split_at_every_offset(offset: int) -> None:
    data = encode_frame(PAYLOAD)
    decoder = FrameDecoder()
    assert decoder.feed(data[:offset]) == []
    assert decoder.pending == offset
    assert decoder.feed(data[offset:]) == [PAYLOAD]
    assert decoder.pending == 0


def test_frame_fed_one_byte_at_a_time() -> None:
    decoder = FrameDecoder()
    received = []
    for byte in encode_frame(PAYLOAD) + encode_frame(b"second"):
        received += decoder.feed(bytes([byte]))
    assert received == [PAYLOAD, b"second"]


def test_two_frames_in_one_read() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(b"one") + encode_frame(b"two")) == [b"one", b"two"]


def test_two_frames_and_part_of_a_third() -> None:
    decoder = FrameDecoder()
    third = encode_frame(b"three")
    assert decoder.feed(encode_frame(b"one") + encode_frame(b"two") + third[:6]) == [b"one", b"two"]
    assert decoder.pending == 6
    assert decoder.feed(third[6:]) == [b"three"]


def test_empty_frame() -> None:
    assert FrameDecoder().feed(encode_frame(b"")) == [b""]


def test_empty_read() -> None:
    assert FrameDecoder().feed(b"") == []


def test_exactly_the_limit_is_accepted() -> None:
    decoder = FrameDecoder(max_size=100)
    assert decoder.feed(encode_frame(b"x" * 100)) == [b"x" * 100]


def test_one_byte_over_the_limit_is_rejected_from_the_header_alone() -> None:
    decoder = FrameDecoder(max_size=100)
    with pytest.raises(ProtocolViolation) as caught:
        decoder.feed((101).to_bytes(HEADER_SIZE, "big"))  # no body sent yet
    assert caught.value.close_code == CloseCode.MESSAGE_TOO_BIG
    assert caught.value.message == "expected at most 100 bytes"


def test_over_the_limit_header_split_across_reads() -> None:
    decoder = FrameDecoder(max_size=100)
    header = (101).to_bytes(HEADER_SIZE, "big")
    assert decoder.feed(header[:3]) == []
    with pytest.raises(ProtocolViolation) as caught:
        decoder.feed(header[3:])
    assert caught.value.close_code == CloseCode.MESSAGE_TOO_BIG


def test_largest_length_prefix_is_rejected_without_buffering() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolViolation):
        decoder.feed(b"\xff\xff\xff\xff")


def test_oversized_frame_after_a_good_one_in_the_same_read() -> None:
    decoder = FrameDecoder(max_size=100)
    with pytest.raises(ProtocolViolation) as caught:
        decoder.feed(encode_frame(b"ok") + (101).to_bytes(HEADER_SIZE, "big"))
    assert caught.value.close_code == CloseCode.MESSAGE_TOO_BIG


# Properties (hypothesis): whatever bytes arrive, in whatever reads, the decoder returns whole frames or raises the
# one documented violation (1009), and never buffers more than one frame's worth.

chunked_streams = st.lists(st.binary(max_size=80), max_size=10)


@given(chunked_streams, st.integers(min_value=0, max_value=64))
def test_random_reads_raise_nothing_but_too_big(chunks: list[bytes], max_size: int) -> None:
    decoder = FrameDecoder(max_size=max_size)
    try:
        for chunk in chunks:
            for payload in decoder.feed(chunk):
                assert len(payload) <= max_size
            assert decoder.pending <= HEADER_SIZE + max_size
    except ProtocolViolation as exc:
        assert exc.close_code == CloseCode.MESSAGE_TOO_BIG


@given(st.lists(st.binary(max_size=40), max_size=6), st.data())
def test_frames_decode_the_same_whatever_the_reads(payloads: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(encode_frame(payload) for payload in payloads)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=8))))
    decoder = FrameDecoder(max_size=40)
    decoded: list[bytes] = []
    for start, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        decoded += decoder.feed(stream[start:stop])
    assert decoded == payloads
    assert decoder.pending == 0
