"""What travels between gates and workers (gameserver/bus/remote.py), the NATS names, and the [remote] settings."""

from __future__ import annotations

import msgpack
import pytest

from gameserver.bus.nats import subject_prefix
from gameserver.bus.remote import BIND, REPLY, Call, decode_call, encode_answer, encode_call
from gameserver.config import load
from gameserver.errors import ConfigError
from gameserver.features.identity.tokens import Claims
from gameserver.protocol.codec import Format


def test_a_call_keeps_its_context() -> None:
    call = Call(
        mid="ab12.7",
        gate="ab12",
        conn=31,
        fmt=Format.JSON,
        deadline=1_800_000_000.25,
        uid=42,
        claims=Claims(42, issued_ms=1_700_000_000_123, auth_time=1_700_000_000),
        remote="203.0.113.9",
        message={"id": 3, "fn": "mail.claim", "args": {"mail_id": "m1", 1: b"\x00"}, "token": "t"},
    )
    assert decode_call(encode_call(call)) == call


def test_an_unbound_call() -> None:
    call = Call("g.1", "g", 1, Format.MSGPACK, 0.0, None, None, "", {"id": 1, "fn": "sys.time"})
    assert decode_call(encode_call(call)) == call


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        msgpack.packb([1, 2, 3]),
        msgpack.packb({"mid": "x"}),
        msgpack.packb([99, "g.1", "g", 1, 0, 0.0, None, None, "", {}]),  # another version
        msgpack.packb([1, "g.1", "g", 1, 0, 0.0, None, None, "", "not a map"]),
    ],
)
def test_what_is_not_a_call_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_call(data)


def test_answers_start_with_their_kind_message_id_and_connection() -> None:
    assert msgpack.unpackb(encode_answer(REPLY, "g.1", 5, 0, {"id": 1, "ok": True, "data": None})) == [
        REPLY,
        "g.1",
        5,
        0,
        {"id": 1, "ok": True, "data": None},
    ]
    assert msgpack.unpackb(encode_answer(BIND, "g.2", 5, 42, None)) == [BIND, "g.2", 5, 42, None]
    with pytest.raises(TypeError):
        encode_answer(REPLY, "g.3", 5, 0, {"id": 1, "ok": True, "data": object()})


@pytest.mark.parametrize(
    ("prefix", "expected"), [("gs:", "gs"), ("", "gs"), ("test:push:ab12:", "test_push_ab12"), ("a.b*c>", "a_b_c_")]
)
def test_nats_names_come_from_the_redis_prefix(prefix: str, expected: str) -> None:
    assert subject_prefix(prefix) == expected


def test_remote_settings() -> None:
    assert load(None, env={}).request_timeout == 11.0  # worker.timeout + 1
    assert load(None, env={}, overrides={"remote.request_timeout": 3.0}).request_timeout == 3.0
    assert load(None, env={}, overrides={"server.bus": "nats"}).bus_backend == "nats"
    with pytest.raises(ConfigError, match="remote.gate_ttl: must be at least twice remote.heartbeat"):
        load(None, env={}, overrides={"remote.heartbeat": 3.0})
