"""Metrics for the console's graphs: each process samples a few of its numbers every ``admin.metrics_interval``
seconds into a list of its own in Redis, trimmed to ``admin.metrics_window`` (a bounded ring per node; on the
in-process store, in this process's memory). The console reads every node's ring.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from gameserver.keys import Keys

log = logging.getLogger("gameserver.features.admin")

Snapshot = Callable[[], dict[str, float]]
STOP_TIMEOUT = 2.0  # seconds a stop waits for the sample being written


class Sampler:
    """Writes ``snapshot()`` with a time stamp (``t``, ms) to this node's ring every ``interval`` seconds."""

    def __init__(
        self, redis: Redis, keys: Keys, *, node: str, snapshot: Snapshot, interval: float, window: float
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.node = node
        self.snapshot = snapshot
        self.interval = interval
        self.window_ms = int(window * 1000)
        self.size = max(2, math.ceil(window / interval))
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="metrics-sampler")

    async def stop(self) -> None:
        """Stop sampling; a sample being written finishes first (within :data:`STOP_TIMEOUT` seconds): a Redis
        pipeline cancelled halfway can leave its connection waiting for ever."""
        self._stopping.set()
        if self._task is not None:
            await asyncio.wait([self._task], timeout=STOP_TIMEOUT)
            if not self._task.done():
                self._task.cancel()

    async def sample(self) -> None:
        now = int(time.time() * 1000)
        key = self.keys.metrics_samples(self.node)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.lpush(key, json.dumps({"t": now, **self.snapshot()}))
            pipe.ltrim(key, 0, self.size - 1)
            pipe.pexpire(key, self.window_ms)
            pipe.zadd(self.keys.metrics_nodes(), {self.node: now})
            pipe.zremrangebyscore(self.keys.metrics_nodes(), "-inf", now - self.window_ms)
            await pipe.execute()

    async def _run(self) -> None:
        failing = False
        while not self._stopping.is_set():
            try:
                await self.sample()
                failing = False
            except Exception as exc:
                if not failing:
                    log.warning("metrics sample not stored: %s", exc)
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)


async def read_samples(redis: Redis, keys: Keys, *, window: float) -> dict[str, list[dict[str, Any]]]:
    """Every node's samples of the last ``window`` seconds, oldest first, by node id."""
    since = int((time.time() - window) * 1000)
    nodes: Any = await redis.zrangebyscore(keys.metrics_nodes(), since, "+inf")
    if not nodes:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for node in nodes:
            pipe.lrange(keys.metrics_samples(node), 0, -1)
        rings = await pipe.execute()
    found: dict[str, list[dict[str, Any]]] = {}
    for node, ring in zip(nodes, rings, strict=True):
        samples = [json.loads(raw) for raw in ring]
        found[str(node)] = [sample for sample in reversed(samples) if sample["t"] >= since]
    return found
