"""Token buckets (gameserver/ratelimit.py): the caller passes the time, so no clock is needed here."""

from __future__ import annotations

from gameserver.ratelimit import TokenBucket


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
