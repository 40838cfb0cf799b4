"""Token buckets: ``rate`` tokens a second, at most ``burst`` saved up. Pure: the caller passes the time."""

from __future__ import annotations

from collections import OrderedDict


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens if there are enough; False means over the rate."""
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self.stamp = now
        if tokens < cost:
            self.tokens = tokens
            return False
        self.tokens = tokens - cost
        return True

    def wait(self, cost: float = 1.0) -> float:
        """Seconds from the last :meth:`take` until ``cost`` tokens are there (0.0: there are now)."""
        return max(0.0, (cost - self.tokens) / self.rate)


class KeyedBuckets:
    """A :class:`TokenBucket` per key (a client address), in bounded memory.

    A bucket left alone for ``burst / rate`` seconds is full again, no different from a new one, so it is
    dropped; past ``max_keys`` buckets the least recently used one goes however full it is (its key then
    starts again with a full bucket: a flood of other keys can let a key through, never refuse it). Both
    checks look only at the oldest bucket, as the buckets are kept in the order they were last used:
    :meth:`take` costs O(1), amortised.
    """

    __slots__ = ("rate", "burst", "max_keys", "_refill", "_buckets")

    def __init__(self, rate: float, burst: float, *, max_keys: int) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._refill = burst / rate  # seconds for an empty bucket to fill up
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now: float, cost: float = 1.0) -> float:
        """Spend ``cost`` of ``key``'s tokens: 0.0 if they were there, else the seconds until they are."""
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            self._make_room(now)
            bucket = buckets[key] = TokenBucket(self.rate, self.burst, now)
        else:
            buckets.move_to_end(key)
        if bucket.take(now, cost):
            return 0.0
        return bucket.wait(cost)

    def _make_room(self, now: float) -> None:
        buckets = self._buckets
        while buckets:
            oldest = next(iter(buckets.values()))
            if len(buckets) < self.max_keys and now - oldest.stamp < self._refill:
                return
            buckets.popitem(last=False)
