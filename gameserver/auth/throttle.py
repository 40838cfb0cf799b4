"""Brute-force protection: failed logins counted per username and per client address, in Redis.

Each counter lives for ``auth.failure_window`` seconds from its first failure (a fixed window that the key's
TTL ends), so the limits hold across every process sharing the Redis. An attempt is counted *before* the
password is checked, in one script that also refuses it when either counter is at its limit; a successful
login takes its count back. Counting first means a burst of concurrent guesses cannot all slip past the
check while their hashes are still being computed.
"""

from __future__ import annotations

import math

from redis.asyncio import Redis

from gameserver.auth.errors import LoginThrottled
from gameserver.keys import Keys

# KEYS: the username counter, the address counter. ARGV: their limits, then the window in ms.
# Returns 0 if the attempt is counted, else the ms until the blocking counter expires.
_ACQUIRE = """
local wait = 0
for i = 1, 2 do
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[i]) then
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl < 0 then
      redis.call('PEXPIRE', KEYS[i], ARGV[3])
      ttl = tonumber(ARGV[3])
    end
    wait = math.max(wait, ttl)
  end
end
if wait > 0 then return wait end
for i = 1, 2 do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
end
return 0
"""

# The attempt succeeded: it was not a failure.
_RELEASE = """
for i = 1, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 and redis.call('DECR', KEYS[i]) <= 0 then redis.call('DEL', KEYS[i]) end
end
return 0
"""


class LoginThrottle:
    """Counts login attempts against ``max_user`` per username and ``max_addr`` per address per ``window``."""

    def __init__(self, redis: Redis, keys: Keys, *, max_user: int, max_addr: int, window: float) -> None:
        self.keys = keys
        self.max_user = max_user
        self.max_addr = max_addr
        self.window_ms = int(window * 1000)
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)

    def _keys(self, username: str, address: str) -> list[str]:
        return [self.keys.login_failures_user(username), self.keys.login_failures_addr(address or "unknown")]

    async def attempt(self, username: str, address: str) -> None:
        """Count an attempt as a failure until :meth:`succeeded` says otherwise.

        Raises:
            LoginThrottled: the username or the address has failed too often in the window.
        """
        wait = await self._acquire(
            keys=self._keys(username, address), args=[self.max_user, self.max_addr, self.window_ms]
        )
        if int(wait) > 0:
            raise LoginThrottled(math.ceil(int(wait) / 1000))

    async def succeeded(self, username: str, address: str) -> None:
        await self._release(keys=self._keys(username, address))
