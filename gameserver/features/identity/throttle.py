"""Brute-force and abuse limits on the auth role, counted in Redis: failed logins per username and per client
address, registrations per client address.

Each counter lives for its window from its first count (a fixed window that the key's TTL ends), so the
limits hold across every process sharing the Redis. An attempt is counted *before* the work it guards (a
password check, an account insert), in one script that also refuses it when any of its counters is at its
limit; a successful login takes its count back. Counting first means a burst of concurrent attempts cannot
all slip past the check while their hashes are still being computed.
"""

from __future__ import annotations

import math

from redis.asyncio import Redis

from gameserver.errors import Throttled
from gameserver.features.identity.errors import LoginThrottled, RegistrationThrottled
from gameserver.keys import Keys

# KEYS: the counters. ARGV: their limits, one per key, then the window in ms.
# Returns 0 if the attempt is counted, else the ms until the (longest) blocking counter expires.
_ACQUIRE = """
local window = ARGV[#KEYS + 1]
local wait = 0
for i = 1, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[i]) then
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl < 0 then
      redis.call('PEXPIRE', KEYS[i], window)
      ttl = tonumber(window)
    end
    wait = math.max(wait, ttl)
  end
end
if wait > 0 then return wait end
for i = 1, #KEYS do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], window) end
end
return 0
"""

# The attempt did not count after all (a login that succeeded).
_RELEASE = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 and redis.call('DECR', KEYS[i]) <= 0 then redis.call('DEL', KEYS[i]) end
end
return 0
"""


class Throttle:
    """Counters with limits in one fixed ``window`` (seconds), checked and counted atomically."""

    def __init__(self, redis: Redis, *, window: float, refused: type[Throttled]) -> None:
        self.window_ms = int(window * 1000)
        self.refused = refused
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)

    async def attempt(self, counters: dict[str, int]) -> None:
        """Count one attempt on each of ``counters`` (key -> limit), unless one is at its limit.

        Raises:
            Throttled: (the ``refused`` subclass) with ``retry_after`` in whole seconds; nothing was counted.
        """
        limits: list[int | str] = [*counters.values(), self.window_ms]
        wait = await self._acquire(keys=list(counters), args=limits)
        if int(wait) > 0:
            raise self.refused(math.ceil(int(wait) / 1000))

    async def release(self, keys: list[str]) -> None:
        await self._release(keys=keys)


class LoginThrottle:
    """Counts login attempts against ``max_user`` per username and ``max_addr`` per address per ``window``."""

    def __init__(self, redis: Redis, keys: Keys, *, max_user: int, max_addr: int, window: float) -> None:
        self.keys = keys
        self.max_user = max_user
        self.max_addr = max_addr
        self.throttle = Throttle(redis, window=window, refused=LoginThrottled)

    def _keys(self, username: str, address: str) -> list[str]:
        return [self.keys.login_failures_user(username), self.keys.login_failures_addr(address or "unknown")]

    async def attempt(self, username: str, address: str) -> None:
        """Count an attempt as a failure until :meth:`succeeded` says otherwise.

        Raises:
            LoginThrottled: the username or the address has failed too often in the window.
        """
        user, addr = self._keys(username, address)
        await self.throttle.attempt({user: self.max_user, addr: self.max_addr})

    async def succeeded(self, username: str, address: str) -> None:
        await self.throttle.release(self._keys(username, address))


class RegistrationThrottle:
    """Counts registrations against ``limit`` per client address per ``window`` seconds."""

    def __init__(self, redis: Redis, keys: Keys, *, limit: int, window: float) -> None:
        self.keys = keys
        self.limit = limit
        self.throttle = Throttle(redis, window=window, refused=RegistrationThrottled)

    async def attempt(self, address: str) -> None:
        """Count a registration (whether or not its username turns out to be free).

        Raises:
            RegistrationThrottled: the address has registered ``limit`` times in the window.
        """
        await self.throttle.attempt({self.keys.registrations_addr(address or "unknown"): self.limit})
