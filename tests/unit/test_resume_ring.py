"""What a resumable session keeps (gameserver/features/resume/ring.py): bounds, acknowledgements, replay, formats."""

from __future__ import annotations

import json

import msgpack
import pytest

from gameserver.errors import ResumeFailed
from gameserver.features.resume.hub import parse_token
from gameserver.features.resume.ring import Ring, encode, recode
from gameserver.protocol.codec import Format

M, J = Format.MSGPACK, Format.JSON


def filled(ring: Ring, count: int, size: int = 10, fmt: Format = M) -> list[bool]:
    return [ring.add(seq, fmt, b"x" * size) for seq in range(1, count + 1)]


def test_within_both_bounds() -> None:
    ring = Ring(max_count=3, max_bytes=100)
    assert filled(ring, 3) == [True, True, True]
    assert len(ring) == 3 and ring.size == 30
    assert ring.add(4, M, b"x") is False  # a fourth message is over the count


def test_over_the_bytes_bound() -> None:
    ring = Ring(max_count=100, max_bytes=25)
    assert filled(ring, 3) == [True, True, False]


def test_evict_gives_up_the_oldest_and_remembers_it() -> None:
    ring = Ring(max_count=3, max_bytes=1000)
    filled(ring, 5)
    ring.evict()
    assert [seq for seq, _, _ in ring.entries] == [3, 4, 5] and ring.size == 30
    assert ring.evicted == 2
    assert not ring.covers(1)  # a client that has only message 1 missed message 2 for good
    assert ring.covers(2) and ring.covers(5)


def test_ack_frees_what_the_client_has() -> None:
    ring = Ring(max_count=10, max_bytes=1000)
    filled(ring, 5)
    ring.ack(3)
    assert [seq for seq, _, _ in ring.entries] == [4, 5] and ring.size == 20
    ring.ack(2)  # an older ack changes nothing
    assert len(ring) == 2
    ring.ack(9)
    assert len(ring) == 0 and ring.size == 0
    assert ring.evicted == 0  # acknowledged is not given up: a resume from there is fine
    assert ring.covers(5) and ring.acked == 9


def test_after_replays_in_order_from_received() -> None:
    ring = Ring(max_count=10, max_bytes=1000)
    for seq in range(1, 6):
        ring.add(seq, M, encode({"seq": seq}, M))
    assert [seq for seq, _, _ in ring.after(2)] == [3, 4, 5]
    assert list(ring.after(5)) == []


def test_recode_between_formats() -> None:
    message = {"id": 7, "ok": True, "data": {"name": "ß", "n": [1, 2.5, None]}, "seq": 3}
    packed = encode(message, M)
    assert msgpack.unpackb(packed) == message
    as_json = recode(packed, M, J)
    assert json.loads(as_json) == message
    assert msgpack.unpackb(recode(as_json, J, M)) == message
    assert recode(packed, M, M) is packed


def test_recode_refuses_what_json_cannot_carry() -> None:
    with pytest.raises((TypeError, ValueError)):
        recode(encode({"event": "e", "data": b"\x00bytes"}, M), M, J)


def test_ring_from_entries_counts_their_bytes() -> None:
    ring = Ring(3, 100, [(4, M, b"abc"), (5, J, b"{}")])
    assert ring.size == 5 and [seq for seq, _, _ in ring.after(0)] == [4, 5]


@pytest.mark.parametrize(
    "token",
    ["", "x", "a" * 16, f"{'a' * 16}.{'b' * 31}", f"{'A' * 16}.{'b' * 32}", f"{'a' * 16}:{'b' * 32}", 5, None],
)
def test_malformed_tokens_are_invalid(token: object) -> None:
    with pytest.raises(ResumeFailed) as failed:
        parse_token(token)
    assert failed.value.reason == "invalid" and failed.value.message.startswith("invalid: ")


def test_a_token_names_its_process_and_session() -> None:
    assert parse_token(f"{'a' * 16}.{'0f' * 16}") == ("a" * 16, "0f" * 16)
