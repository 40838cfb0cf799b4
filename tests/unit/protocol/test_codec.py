"""One gate message <-> bytes (PROTOCOL.md, "Listeners"): exactly one map per frame, else close 1007."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gameserver.errors import CloseCode, ProtocolViolation
from gameserver.protocol.codec import decode_json, decode_msgpack, encode_json, encode_msgpack
from gameserver.protocol.frames import FrameDecoder, encode_frame

REQUEST = {"id": 7, "fn": "sys.echo", "args": {"text": "héllo", "n": [1, 2.5, None, True]}}


def assert_undecodable(decode: Any, payload: Any, message: str) -> None:
    with pytest.raises(ProtocolViolation) as caught:
        decode(payload)
    assert caught.value.close_code == CloseCode.INVALID_DATA
    assert caught.value.message == message


# msgpack


def test_msgpack_round_trip() -> None:
    assert decode_msgpack(encode_msgpack(REQUEST)) == REQUEST


def test_msgpack_keeps_bytes_and_str_apart() -> None:
    message = {"bin": b"\x00\xff", "str": "\x00"}
    assert decode_msgpack(encode_msgpack(message)) == message


@pytest.mark.parametrize(
    ("value", "name"),
    [([1, 2], "list"), ("text", "str"), (1, "int"), (None, "NoneType"), (b"raw", "bytes"), (1.5, "float")],
)
def test_msgpack_that_is_not_a_map(value: Any, name: str) -> None:
    assert_undecodable(decode_msgpack, msgpack.packb(value), f"expected a map, got {name}")


def test_msgpack_trailing_bytes_after_the_map() -> None:
    assert_undecodable(decode_msgpack, msgpack.packb({"id": 1}) + b"\xc0", "undecodable msgpack: ExtraData")


def test_msgpack_two_maps_in_one_frame() -> None:
    payload = msgpack.packb({"id": 1}) + msgpack.packb({"id": 2})
    assert_undecodable(decode_msgpack, payload, "undecodable msgpack: ExtraData")


def test_msgpack_truncated_map() -> None:
    assert_undecodable(
        decode_msgpack, msgpack.packb({"id": 1, "fn": "sys.echo"})[:-3], "undecodable msgpack: ValueError"
    )


def test_msgpack_empty_payload() -> None:
    assert_undecodable(decode_msgpack, b"", "undecodable msgpack: ValueError")


def test_msgpack_bad_utf8_in_a_str() -> None:
    payload = b"\x81\xa2fn\xa2\xc3\x28"  # {"fn": <str holding an invalid UTF-8 sequence>}
    assert_undecodable(decode_msgpack, payload, "undecodable msgpack: UnicodeDecodeError")


def test_msgpack_bad_utf8_in_a_key() -> None:
    assert_undecodable(decode_msgpack, b"\x81\xa1\xff\x01", "undecodable msgpack: UnicodeDecodeError")


def test_msgpack_map_with_a_non_string_key() -> None:
    assert_undecodable(decode_msgpack, msgpack.packb({1: "x"}), "undecodable msgpack: ValueError")


def test_msgpack_reserved_type_byte() -> None:
    assert_undecodable(decode_msgpack, b"\xc1", "undecodable msgpack: FormatError")


def test_msgpack_deep_nesting_is_undecodable() -> None:
    payload = b"\x81\xa1a" + b"\x91" * 100_000 + b"\xc0"  # {"a": [[[...[nil]...]]]}
    assert_undecodable(decode_msgpack, payload, "undecodable msgpack: StackError")


def test_msgpack_moderate_nesting_is_fine() -> None:
    value: Any = None
    for _ in range(100):
        value = [value]
    assert decode_msgpack(encode_msgpack({"a": value})) == {"a": value}


def test_msgpack_nan_is_a_float() -> None:  # msgpack has IEEE 754 floats, NaN included
    decoded = decode_msgpack(encode_msgpack({"x": float("nan")}))
    assert decoded["x"] != decoded["x"]


def test_msgpack_encode_failure_leaves_the_packer_clean() -> None:
    with pytest.raises(TypeError):
        encode_msgpack({"bad": object()})
    assert encode_msgpack({"id": 1}) == msgpack.packb({"id": 1})


def test_msgpack_int_too_big_to_encode() -> None:
    with pytest.raises(OverflowError):
        encode_msgpack({"n": 2**64})


# JSON


def test_json_round_trip() -> None:
    assert decode_json(encode_json(REQUEST)) == REQUEST


def test_json_from_bytes_and_str() -> None:
    assert decode_json(b'{"id":1}') == decode_json('{"id":1}') == {"id": 1}


def test_json_encoding_is_compact_and_keeps_unicode() -> None:
    assert encode_json({"a": [1, "é"], "b": None}) == '{"a":[1,"é"],"b":null}'


@pytest.mark.parametrize(
    ("text", "name"), [("[1]", "list"), ('"s"', "str"), ("1", "int"), ("null", "NoneType"), ("true", "bool")]
)
def test_json_that_is_not_an_object(text: str, name: str) -> None:
    assert_undecodable(decode_json, text, f"expected a JSON object, got {name}")


@pytest.mark.parametrize("text", ["", "{", '{"id":1}{"id":2}', '{"id":1} x', "{'id': 1}", '{"id":01}'])
def test_json_syntax_errors(text: str) -> None:
    assert_undecodable(decode_json, text, "undecodable JSON: JSONDecodeError")


def test_json_trailing_whitespace_is_allowed() -> None:
    assert decode_json('{"id":1}\n ') == {"id": 1}


def test_json_bad_utf8() -> None:
    assert_undecodable(decode_json, b'{"fn":"\xc3\x28"}', "undecodable JSON: UnicodeDecodeError")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_json_numbers_that_are_not_json(literal: str) -> None:
    assert_undecodable(decode_json, f'{{"x":{literal}}}', "undecodable JSON: ValueError")


@pytest.mark.parametrize("text", [r'{"a":"\ud800"}', r'{"a":"x\uDC00"}', r'{"\udfff":1}', r'{"a":["\ud83d"]}'])
def test_json_lone_surrogate_is_not_unicode_text(text: str) -> None:
    assert_undecodable(decode_json, text, "undecodable JSON: lone surrogate")


def test_json_escaped_surrogate_pair_is_fine() -> None:
    assert decode_json(r'{"a":"\ud83d\ude00","b":"\\ud800"}') == {"a": "\U0001f600", "b": "\\ud800"}


def test_json_large_finite_numbers_are_fine() -> None:
    assert decode_json('{"x":1e308,"y":123456789012345678901234567890}') == {
        "x": 1e308,
        "y": 123456789012345678901234567890,
    }


def test_json_deep_nesting_is_undecodable() -> None:
    assert_undecodable(decode_json, '{"a":' + "[" * 100_000 + "]" * 100_000 + "}", "undecodable JSON: RecursionError")


def test_json_encode_refuses_nan_and_bytes() -> None:
    with pytest.raises(ValueError):
        encode_json({"x": float("nan")})
    with pytest.raises(TypeError):
        encode_json({"x": b"raw"})


# Properties: whatever arrives, the only failure is a ProtocolViolation; every map survives the round trip.


@given(st.binary(max_size=256))
def test_random_bytes_through_frames_and_msgpack_raise_only_violations(data: bytes) -> None:
    decoder = FrameDecoder(max_size=128)
    try:
        for payload in decoder.feed(data):
            assert type(decode_msgpack(payload)) is dict
    except ProtocolViolation as exc:
        assert exc.close_code in (CloseCode.INVALID_DATA, CloseCode.MESSAGE_TOO_BIG)


@given(st.binary(max_size=256))
def test_random_bytes_framed_as_msgpack_raise_only_violations(data: bytes) -> None:
    decoder = FrameDecoder()
    try:
        (payload,) = decoder.feed(encode_frame(data))
        assert type(decode_msgpack(payload)) is dict
    except ProtocolViolation as exc:
        assert exc.close_code == CloseCode.INVALID_DATA


@given(st.binary(max_size=256) | st.text(max_size=256))
def test_random_input_to_json_raises_only_violations(data: bytes | str) -> None:
    try:
        assert type(decode_json(data)) is dict
    except ProtocolViolation as exc:
        assert exc.close_code == CloseCode.INVALID_DATA


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
json_maps = st.dictionaries(st.text(), json_values, max_size=6)


@given(json_maps)
def test_any_map_round_trips_through_json(message: dict[str, Any]) -> None:
    assert decode_json(encode_json(message)) == message
    assert json.loads(encode_json(message)) == message


@given(
    st.dictionaries(
        st.text() | st.binary(),
        st.recursive(
            json_scalars | st.binary(),
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
            max_leaves=20,
        ),
        max_size=6,
    )
)
def test_any_map_round_trips_through_msgpack(message: dict[Any, Any]) -> None:
    assert decode_msgpack(encode_msgpack(message)) == message
