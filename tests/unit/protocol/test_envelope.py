"""The request envelope (PROTOCOL.md, "Gate: request / response") and its reference encodings.

The ``golden/`` files hold the exact bytes of a request, an ok reply, an error reply and a push in both
wire formats (Pitaya's ``*.golden``): a change to the wire shows up as a diff of those files. After an
intended, documented change (CHANGELOG.md: anything in PROTOCOL.md is breaking), regenerate them with
``UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/protocol/test_envelope.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gameserver.errors import BadRequest, ProtocolViolation
from gameserver.protocol.codec import decode_json, decode_msgpack, encode_json, encode_msgpack
from gameserver.protocol.envelope import BadEnvelope, Request, error_reply, ok_reply, parse_request, push_message
from gameserver.protocol.frames import FrameDecoder, encode_frame

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def test_minimal_request() -> None:
    assert parse_request({"id": 1, "fn": "sys.echo"}) == Request(1, "sys.echo", {}, None)


def test_full_request() -> None:
    message = {"id": -5, "fn": "mail.send", "args": {"to": 2}, "token": "t.o.k"}
    assert parse_request(message) == Request(-5, "mail.send", {"to": 2}, "t.o.k")


def test_args_null_means_empty() -> None:
    assert parse_request({"id": 1, "fn": "sys.echo", "args": None}).args == {}


def test_token_null_means_none() -> None:
    assert parse_request({"id": 1, "fn": "sys.echo", "token": None}).token is None


def test_unknown_envelope_keys_are_ignored() -> None:
    assert parse_request({"id": 1, "fn": "sys.echo", "extra": 1}) == Request(1, "sys.echo", {}, None)


def test_big_ids_are_echoed() -> None:
    assert parse_request({"id": 2**64 - 1, "fn": "f"}).id == 2**64 - 1


def reject(message: dict[Any, Any]) -> BadEnvelope:
    with pytest.raises(BadEnvelope) as caught:
        parse_request(message)
    assert isinstance(caught.value, BadRequest)
    assert caught.value.code == "bad_request"
    return caught.value


@pytest.mark.parametrize("request_id", [None, "1", 1.0, True, False, [1], {"n": 1}, b"1"])
def test_id_not_an_int_answers_with_id_null(request_id: Any) -> None:
    exc = reject({"id": request_id, "fn": "sys.echo"})
    assert exc.request_id is None
    assert exc.message == "id must be an integer"


def test_id_missing_answers_with_id_null() -> None:
    exc = reject({"fn": "sys.echo"})
    assert (exc.request_id, exc.message) == (None, "id must be an integer")


def test_bytes_keys_are_not_the_envelope() -> None:
    assert reject({b"id": 1, b"fn": "sys.echo"}).request_id is None


@pytest.mark.parametrize("fn", [None, 1, b"sys.echo", ["sys.echo"]])
def test_fn_missing_or_not_a_string(fn: Any) -> None:
    message = {"id": 3, "fn": fn} if fn is not None else {"id": 3}
    exc = reject(message)
    assert (exc.request_id, exc.message) == (3, "fn must be a string")


@pytest.mark.parametrize("args", [[], [1], "x", 0, False, b""])
def test_args_not_a_map(args: Any) -> None:
    exc = reject({"id": 4, "fn": "sys.echo", "args": args})
    assert (exc.request_id, exc.message) == (4, "args must be a map")


@pytest.mark.parametrize("token", [1, b"tok", ["t"], {}, True])
def test_token_not_a_string(token: Any) -> None:
    exc = reject({"id": 5, "fn": "sys.echo", "token": token})
    assert (exc.request_id, exc.message) == (5, "token must be a string")


def test_the_first_problem_is_reported() -> None:
    assert reject({"id": "x", "fn": 1, "args": 1}).message == "id must be an integer"
    assert reject({"id": 1, "fn": 1, "args": 1}).message == "fn must be a string"


def test_replies_and_push() -> None:
    assert ok_reply(1, [1]) == {"id": 1, "ok": True, "data": [1]}
    assert error_reply(None, "bad_request", "m") == {
        "id": None,
        "ok": False,
        "error": {"code": "bad_request", "message": "m"},
    }
    assert push_message("mail.new", {"mail_id": "m1"}) == {"event": "mail.new", "data": {"mail_id": "m1"}}


# Golden files: what goes over the wire, byte for byte.

MESSAGES: dict[str, dict[str, Any]] = {
    "request": {"id": 42, "fn": "mail.send", "args": {"to": 7, "subject": "hi", "body": "héllo"}, "token": "a.b.c"},
    "ok_reply": ok_reply(42, {"mail_id": "m-1", "n": [1, 2.5, None, True]}),
    "error_reply": error_reply(None, "bad_request", "id must be an integer"),
    "push": push_message("mail.new", {"mail_id": "m-1", "from": 3}),
}


def golden(name: str, produced: bytes | None = None) -> bytes:
    """The reference bytes; with ``UPDATE_GOLDEN=1``, ``produced`` replaces them first."""
    path = GOLDEN / name
    if UPDATE and produced is not None:
        path.write_bytes(produced)
    return path.read_bytes()


@pytest.mark.parametrize("name", MESSAGES)
def test_msgpack_tcp_frame_golden(name: str) -> None:
    frame = encode_frame(encode_msgpack(MESSAGES[name]))
    assert frame == golden(f"{name}.msgpack.golden", frame)
    (payload,) = FrameDecoder().feed(frame)
    assert decode_msgpack(payload) == MESSAGES[name]


@pytest.mark.parametrize("name", MESSAGES)
def test_json_golden(name: str) -> None:
    text = encode_json(MESSAGES[name]).encode()
    assert text == golden(f"{name}.json.golden", text)
    assert decode_json(text) == MESSAGES[name]


def test_golden_request_parses() -> None:
    (payload,) = FrameDecoder().feed(golden("request.msgpack.golden"))
    assert parse_request(decode_msgpack(payload)) == Request(
        42, "mail.send", {"to": 7, "subject": "hi", "body": "héllo"}, "a.b.c"
    )


def test_idempotency_key() -> None:
    """docs/PROTOCOL.md, "Idempotency keys": an extension field, absent or null means none."""
    message = {"id": 3, "fn": "inventory.discard", "args": {}, "idem": "k-1"}
    assert parse_request(message) == Request(3, "inventory.discard", {}, None, "k-1")
    assert parse_request({"id": 3, "fn": "x.y", "idem": None}).idem is None


@pytest.mark.parametrize("idem", [5, "", "k" * 129, b"bytes"])
def test_bad_idempotency_key(idem: Any) -> None:
    with pytest.raises(BadEnvelope, match="idem must be a string of 1 to 128 characters") as caught:
        parse_request({"id": 4, "fn": "x.y", "idem": idem})
    assert caught.value.request_id == 4


# Properties (hypothesis): any decoded map is a request or one BadEnvelope (bad_request), never another exception.

envelope_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
envelope_keys = st.sampled_from(["id", "fn", "args", "token", "idem"]) | st.text(max_size=8) | st.binary(max_size=8)


@given(st.dictionaries(envelope_keys, envelope_values, max_size=6))
def test_any_map_is_a_request_or_a_bad_envelope(message: dict[Any, Any]) -> None:
    try:
        request = parse_request(message)
    except BadEnvelope as exc:
        assert exc.code == "bad_request"
        assert exc.request_id is None or exc.request_id == message["id"]
        return
    assert type(request.id) is int and request.id == message["id"]
    assert type(request.fn) is str and type(request.args) is dict
    assert request.token is None or type(request.token) is str
    assert request.idem is None or type(request.idem) is str


@given(st.binary(max_size=200))
def test_random_msgpack_frames_end_in_a_request_a_bad_envelope_or_a_violation(data: bytes) -> None:
    try:
        for payload in FrameDecoder(max_size=100).feed(data):
            parse_request(decode_msgpack(payload))
    except (BadEnvelope, ProtocolViolation):
        pass
