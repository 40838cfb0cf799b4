"""Token buckets (gameserver/ratelimit.py): the caller passes the time, so no clock is needed here."""

from __future__ import annotations

from gameserver.ratelimit import KeyedBuckets, TokenBucket


def test_starts_full_and_allows_a_burst() -> None:
    bucket = TokenBucket(rate=1.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]


def test_refills_at_the_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=1, now=0.0)
    assert bucket.take(0.0)
    assert not bucket.take(0.05)  # half a token
    assert bucket.take(0.1)  # the other half arrived


def test_never_saves_up_more_than_the_burst() -> None:
    bucket = TokenBucket(rate=100.0, burst=2, now=0.0)
    assert [bucket.take(1000.0) for _ in range(3)] == [True, True, False]


def test_a_refused_take_costs_nothing() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=0.0)
    assert bucket.take(0.0)
    assert not bucket.take(0.5)
    assert not bucket.take(0.5)
    assert bucket.take(1.0)


def test_cost() -> None:
    bucket = TokenBucket(rate=1.0, burst=5, now=0.0)
    assert bucket.take(0.0, cost=5)
    assert not bucket.take(0.0, cost=0.5)
    assert bucket.take(2.0, cost=2)


def test_steady_rate_is_sustained() -> None:
    bucket = TokenBucket(rate=256.0, burst=1, now=0.0)  # binary fractions: no rounding at the boundary
    assert all(bucket.take(i / 256) for i in range(1, 1001))
    assert not bucket.take(1000 / 256)


def test_wait_says_when_the_next_token_is_there() -> None:
    bucket = TokenBucket(rate=4.0, burst=1, now=0.0)
    assert bucket.take(0.0) and bucket.wait() == 0.25
    assert not bucket.take(0.125)
    assert bucket.wait() == 0.125


def test_keyed_buckets_are_separate() -> None:
    buckets = KeyedBuckets(rate=1.0, burst=2, max_keys=10)
    assert [buckets.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 1.0]
    assert buckets.take("b", 0.0) == 0.0
    assert buckets.take("a", 0.5) == 0.5
    assert buckets.take("a", 1.0) == 0.0


def test_idle_buckets_are_dropped_once_full_again() -> None:
    buckets = KeyedBuckets(rate=1.0, burst=2, max_keys=1000)  # full again 2 s after the last take
    for i in range(100):
        buckets.take(f"10.0.0.{i}", i / 100)
    assert len(buckets) == 100
    buckets.take("new", 2.5)  # those last used at 0.5 or before (51 of them) are full again: dropped
    assert len(buckets) == 50
    buckets.take("newer", 10.0)
    assert len(buckets) == 1


def test_a_flood_of_keys_stays_within_max_keys() -> None:
    buckets = KeyedBuckets(rate=1.0, burst=1, max_keys=8)
    for i in range(10_000):
        assert buckets.take(f"addr-{i}", 0.0) == 0.0  # each new key starts full
    assert len(buckets) == 8


def test_a_key_in_use_is_kept_over_older_ones() -> None:
    buckets = KeyedBuckets(rate=1.0, burst=1, max_keys=3)
    buckets.take("player", 0.0)
    buckets.take("a", 0.0)
    buckets.take("b", 0.0)
    assert buckets.take("player", 0.0) == 1.0  # used again: now the most recent
    buckets.take("c", 0.0)  # evicts "a", the least recently used
    assert buckets.take("player", 0.0) == 1.0  # still its own, empty bucket
