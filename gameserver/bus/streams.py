"""Requests between processes over Redis Streams (``server.bus = "redis"``; the shared part is ``remote.py``).

Keys (``gameserver/keys.py``, under the prefix):

| key | type | holds |
|---|---|---|
| ``requests`` | stream, consumer group ``workers`` | calls waiting or running: one entry each, field ``c`` |
| ``gates.id.<gid>`` | string, TTL ``remote.gate_ttl`` | a live gate's node id, renewed every ``remote.heartbeat`` |
| ``msg.<mid>`` | string with a TTL (``remote.mid_ttl``, 10 s) | message id -> the gate id it answers to |
| ``gate.<gid>`` | pub/sub channel | the answers to one gate, in the order each worker sent them |

A gate sends each batch of calls in one pipeline (``XADD`` and ``SET msg.<mid>``). Each worker reads with
``XREADGROUP`` under a consumer name of its own, so Redis records who holds each entry; a worker that dies
leaves its entries pending, and after ``remote.reclaim_after`` without a touch another worker takes them over
with ``XAUTOCLAIM`` (a live worker touches its running entries every third of that time, so a long request is
not taken from it). An entry is acknowledged and deleted (``XACK`` + ``XDEL``) in the pipeline that publishes its
reply, after the reply. Answers go on the gate's channel: a gate that died takes its answers with it, and
nothing piles up; a taken-over call whose gate is gone (no ``gates.id.<gid>``) is dropped unrun.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from gameserver.bus.fanout import RedisFanout
from gameserver.bus.remote import BrokerError, Delivery
from gameserver.keys import Keys
from gameserver.storage.pending import TOUCH

log = logging.getLogger("gameserver.bus.streams")

GROUP = "workers"
FIELD = b"c"
BLOCK_MS = 1000  # how long an idle worker's XREADGROUP waits (well under redis.timeout)
SUBSCRIBE_TIMEOUT = 2.0  # seconds a gate waits for Redis to confirm its answer channel at start


class RedisStreams:
    """Both sides of the remote bus on one Redis.

    Args:
        redis: a client that does not decode replies; closed by :meth:`close`.
        fanout: the process's pub/sub (a gate hears its answers through it; not closed here).
        keys: the key names.
        reclaim_after: seconds a call may go untouched before another worker takes it over.
        gate_ttl: seconds a gate's ``gates.id.<gid>`` lives without a heartbeat.
        mid_ttl: seconds ``msg.<mid>`` lives.
    """

    def __init__(
        self,
        redis: Redis,
        fanout: RedisFanout,
        keys: Keys,
        *,
        reclaim_after: float,
        gate_ttl: float,
        mid_ttl: float,
        block_ms: int = BLOCK_MS,
    ) -> None:
        self.redis = redis
        self.fanout = fanout
        self.keys = keys
        self.stream = keys.requests()
        self.reclaim_ms = max(1, int(reclaim_after * 1000))
        self.gate_ttl_ms = max(1, int(gate_ttl * 1000))
        self.mid_ttl_ms = max(1, int(mid_ttl * 1000))
        self.block_ms = block_ms
        self.gid = ""
        self.node = ""
        self.consumer = ""
        self._channel = ""
        self._receiver: Callable[[str, bytes], None] | None = None
        self._reclaim_at = 0.0
        self._cursor = b"0-0"
        self._touch = redis.register_script(TOUCH)

    # -- gate

    async def start_gate(self, gid: str, node: str, on_answer: Callable[[bytes], None]) -> None:
        self.gid = gid
        self.node = node
        self._channel = self.keys.gate_answers(gid)

        def receiver(channel: str, payload: bytes) -> None:
            on_answer(payload)

        self._receiver = receiver
        self.fanout.subscribe(self._channel, receiver)
        if not await self.fanout.subscribed([self._channel], SUBSCRIBE_TIMEOUT):
            raise BrokerError("Redis did not confirm the gate's answer channel")

    async def send(self, calls: list[tuple[str, bytes]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for mid, data in calls:
            pipe.xadd(self.stream, {FIELD: data})
            pipe.set(self.keys.message(mid), self.gid, px=self.mid_ttl_ms)
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerError(f"{type(exc).__name__}: {exc}") from exc

    async def heartbeat(self) -> int:
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self.keys.gate(self.gid), self.node, px=self.gate_ttl_ms)
        pipe.xlen(self.stream)
        try:
            _, depth = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerError(f"{type(exc).__name__}: {exc}") from exc
        return int(depth)

    # -- worker

    async def start_worker(self, consumer: str) -> None:
        self.consumer = consumer
        try:
            await self._ensure_group()
        except (RedisError, OSError) as exc:
            raise BrokerError(f"{type(exc).__name__}: {exc}") from exc

    async def _ensure_group(self) -> None:
        try:
            # From the start of the stream: calls sent before any worker existed are served if still in time.
            await self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def fetch(self, count: int) -> list[Delivery]:
        try:
            if time.monotonic() >= self._reclaim_at:
                taken = await self._reclaim(count)
                if taken:
                    return taken
            response: Any = await self.redis.xreadgroup(
                GROUP, self.consumer, {self.stream: ">"}, count=count, block=self.block_ms
            )
        except ResponseError as exc:
            if "NOGROUP" in str(exc):  # the stream went (a flushed or restarted Redis): join again
                await self._recover_group(exc)
                return []
            raise BrokerError(f"{type(exc).__name__}: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise BrokerError(f"{type(exc).__name__}: {exc}") from exc
        deliveries = []
        for _, entries in response or ():
            for entry_id, fields in entries:
                deliveries.append(Delivery(entry_id, fields.get(FIELD, b""), False))
        return deliveries

    async def _recover_group(self, cause: Exception) -> None:
        try:
            await self._ensure_group()
        except (RedisError, OSError) as exc:
            raise BrokerError(f"{type(exc).__name__}: {exc}") from cause

    async def _reclaim(self, count: int) -> list[Delivery]:
        """Entries idle past ``reclaim_after`` (their worker died), taken over; the scan goes round the pending
        list once per ``reclaim_after / 2``."""
        result: Any = await self.redis.xautoclaim(
            self.stream, GROUP, self.consumer, self.reclaim_ms, start_id=self._cursor, count=count
        )
        cursor, entries = result[0], result[1]
        self._cursor = cursor
        if cursor in (b"0-0", "0-0"):
            self._reclaim_at = time.monotonic() + self.reclaim_ms / 2000
        gone: list[bytes] = list(result[2]) if len(result) > 2 else []
        if gone:  # pending ids whose entries were deleted: nothing to run, nothing to keep
            await self.redis.xack(self.stream, GROUP, *gone)
        deliveries = []
        for entry_id, fields in entries:
            if fields is None:
                continue
            deliveries.append(Delivery(entry_id, fields.get(FIELD, b""), True))
        if deliveries:
            log.info("worker %s took over %d requests from a worker that stopped", self.consumer, len(deliveries))
        return deliveries

    async def flush(self, answers: list[tuple[str, bytes]], done: list[Delivery]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for gate, data in answers:
            pipe.publish(self.keys.gate_answers(gate), data)
        if done:
            ids = [delivery.token for delivery in done]
            pipe.xack(self.stream, GROUP, *ids)
            pipe.xdel(self.stream, *ids)
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            raise BrokerError(f"{type(exc).__name__}: {exc}") from exc

    async def touch(self, running: list[Delivery]) -> None:
        try:
            await self._touch(keys=[self.stream, self.consumer], args=[GROUP, *(d.token for d in running)])
        except (RedisError, OSError) as exc:
            raise BrokerError(f"{type(exc).__name__}: {exc}") from exc

    async def depth(self) -> int:
        try:
            return int(await self.redis.xlen(self.stream))
        except (RedisError, OSError) as exc:
            raise BrokerError(f"{type(exc).__name__}: {exc}") from exc

    async def gate_alive(self, gid: str) -> bool:
        try:
            return bool(await self.redis.exists(self.keys.gate(gid)))
        except (RedisError, OSError) as exc:
            raise BrokerError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._receiver is not None:
            self.fanout.unsubscribe(self._channel, self._receiver)
            self._receiver = None
            if self.gid:
                try:
                    async with asyncio.timeout(1.0):
                        await self.redis.delete(self.keys.gate(self.gid))
                except (RedisError, OSError, TimeoutError):
                    pass  # it expires
        await self.redis.aclose()
