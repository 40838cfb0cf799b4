"""The registry's entries in Redis: ``nodes.<id>`` (a hash, :mod:`gameserver.features.nodes.record`) with an expiry, and
``nodes`` (a sorted set of the node ids scored by when their entry expires), both under ``redis.prefix``.

A heartbeat rewrites a node's hash and its score in one Lua script, on the Redis server's clock (``TIME``), so
that nodes and readers on machines whose clocks differ agree on what is live. The hash expires on its own
(``PEXPIRE``): a killed process's entry is gone after its TTL, and a front reading the hash finds nothing. The
sorted set lets readers list the nodes without ``SCAN``; its members whose entry expired are skipped by readers
and removed by the next heartbeat of any node.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from redis.asyncio import Redis

from gameserver.features.nodes.record import NodeRecord, least_loaded, live
from gameserver.keys import Keys

# KEYS: the node's hash, the nodes set. ARGV: node id, TTL in ms, then the hash's fields and values.
# Returns the instance that held the entry before (nil if none) and the server's time in ms.
BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = now + tonumber(ARGV[2])
local previous = redis.call('HGET', KEYS[1], 'instance')
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'heartbeat', now, 'expires', expires, unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], expires, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return {previous, now}
"""

# KEYS: the node's hash, the nodes set. ARGV: node id, this process's instance. Another process that took the
# same node id over keeps its entry.
LEAVE = """
local owner = redis.call('HGET', KEYS[1], 'instance')
if owner and owner ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


@dataclass(frozen=True)
class Beat:
    """What a heartbeat found: the instance that held the entry before it (None: nobody) and the Redis time."""

    previous: str | None
    now_ms: int


class NodeStore:
    """The node registry of one Redis and prefix: what handlers get injected as ``nodes``.

    Args:
        redis: a client decoding replies to ``str``.
        keys: the key names (``redis.prefix``).
    """

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._beat = redis.register_script(BEAT)
        self._leave = redis.register_script(LEAVE)

    async def beat(self, record: NodeRecord, ttl: float) -> Beat:
        """Write ``record`` as live for ``ttl`` seconds from now."""
        args: list[str | int] = [record.node, max(1, round(ttl * 1000))]
        for name, value in record.to_fields().items():
            args += [name, value]
        previous, now_ms = await self._beat(keys=[self.keys.node(record.node), self.keys.nodes()], args=args)
        return Beat(previous, int(now_ms))

    async def leave(self, node: str, instance: str) -> bool:
        """Remove ``node``'s entry if ``instance`` holds it (or nobody does); True if removed."""
        return bool(await self._leave(keys=[self.keys.node(node), self.keys.nodes()], args=[node, instance]))

    async def live(self, role: str | None = None) -> list[NodeRecord]:
        """The live nodes (those with ``role``, if given), by node id. Two round trips, whatever their number."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.zrange(self.keys.nodes(), 0, -1, withscores=True)
            (seconds, micros), scored = await pipe.execute()
        nodes = live(scored, seconds * 1000 + micros // 1000)
        if not nodes:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for node in nodes:
                pipe.hgetall(self.keys.node(node))
            hashes = await pipe.execute()
        records = [NodeRecord.from_fields(fields) for fields in hashes]  # None: expired since the first trip
        return sorted((r for r in records if r is not None and (role is None or role in r.roles)), key=lambda r: r.node)

    async def pick(self, role: str, rng: random.Random | None = None) -> NodeRecord | None:
        """The least loaded live node with ``role`` (:func:`gameserver.features.nodes.record.least_loaded`), or None."""
        return least_loaded(await self.live(role), rng)
