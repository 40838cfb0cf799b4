"""Channel fan-out between processes through Redis pub/sub, behind :class:`~gameserver.bus.local.LocalBus`'s
``publish`` / ``subscribe`` / ``unsubscribe``: the chat edge's channels and the players' pushes
(:class:`~gameserver.bus.redispubsub.RedisBus`).

Each process holds one subscriber connection. A channel is subscribed in Redis when its first local
receiver subscribes and unsubscribed when the last one leaves, so a process only hears the channels it has
members for. ``publish`` never waits: payloads go to an outbox that one task sends in order (pipelined when
several are waiting), so a process's messages reach Redis, and every subscriber, in the order published.

Pub/sub is fire-and-forget: a message published while a subscriber's connection is down is lost for it.
After a reconnect the subscriptions are restored (redis-py replays them; :meth:`RedisFanout._reconcile`
repairs any that a failed command left out).

A payload this process publishes is lost too when Redis cannot take it (the publish fails, or the outbox is
full because Redis has been down or slow). Every such loss goes through :meth:`RedisFanout._lost`: it is
counted (``failed``, and by whoever asked with :meth:`RedisFanout.count_losses`: the chat edge exports its
share as ``gameserver_chat_publish_failed_total``) and logged at most once per :data:`LOSS_LOG_INTERVAL`, with a
last line once publishing works again, so an outage gives a few lines, not one per message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from gameserver.bus.local import Receiver
from gameserver.tasks import cancel_and_wait

log = logging.getLogger("gameserver.bus.fanout")

RETRY_DELAY = 0.5  # seconds between attempts while Redis is unreachable
MAX_OUTBOX = 10_000  # payloads waiting for Redis; beyond it (Redis slow or down) new ones are dropped
LOSS_LOG_INTERVAL = 10.0  # seconds: at most one warning about lost payloads per interval
SUBSCRIBE = "SUBSCRIBE"
UNSUBSCRIBE = "UNSUBSCRIBE"


class RedisFanout:
    """Publish and subscribe to channels through Redis.

    Args:
        redis: a client that does not decode replies (payloads are bytes); closed by :meth:`close`.

    Call :meth:`start` in the running loop before use and :meth:`close` at shutdown.
    """

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.receivers: dict[str, set[Receiver]] = {}
        self._pubsub: PubSub = redis.pubsub()
        self._outbox: list[tuple[str, bytes]] = []
        self._commands: list[tuple[str, str]] = []  # (SUBSCRIBE | UNSUBSCRIBE, channel), in call order
        self._confirmations: dict[str, deque[asyncio.Future[None]]] = {}
        self._publish_wake = asyncio.Event()
        self._command_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.published = 0
        self.failed = 0  # payloads lost: Redis could not be reached, or the outbox was full
        self._loss_counters: list[tuple[str, Callable[[int], None]]] = []
        self._unlogged = 0  # losses since the last warning
        self._logged_at = -LOSS_LOG_INTERVAL  # time.monotonic() of the last warning

    async def start(self) -> None:
        try:
            await self._pubsub.connect()  # type: ignore[no-untyped-call]
        except Exception as exc:  # the reader keeps trying; publishing fails fast meanwhile
            log.warning("fan-out: Redis unreachable at start (%s); retrying", exc)
        self._tasks = [
            asyncio.create_task(self._publisher(), name="fanout-publish"),
            asyncio.create_task(self._commander(), name="fanout-subscribe"),
            asyncio.create_task(self._reader(), name="fanout-read"),
        ]

    def publish(self, channel: str, payload: bytes) -> None:
        if len(self._outbox) >= MAX_OUTBOX:
            self._lost([channel], "the outbox is full")
            return
        self._outbox.append((channel, payload))
        self._publish_wake.set()

    def subscribe(self, channel: str, receiver: Receiver) -> None:
        receivers = self.receivers.get(channel)
        if receivers is None:
            receivers = self.receivers[channel] = set()
            self._command(SUBSCRIBE, channel)
        receivers.add(receiver)

    def unsubscribe(self, channel: str, receiver: Receiver) -> None:
        receivers = self.receivers.get(channel)
        if receivers is None:
            return
        receivers.discard(receiver)
        if not receivers:
            del self.receivers[channel]
            self._command(UNSUBSCRIBE, channel)

    def count_losses(self, prefix: str, count: Callable[[int], None]) -> None:
        """Call ``count(n)`` whenever ``n`` payloads published on channels whose name starts with ``prefix``
        are lost (see the module's docstring); ``failed`` counts every channel."""
        self._loss_counters.append((prefix, count))

    async def subscribed(self, channels: list[str], timeout: float) -> bool:
        """Wait until Redis has confirmed the subscriptions asked for so far on ``channels``.

        Returns False if that takes longer than ``timeout`` seconds (Redis down or slow).
        """
        waiting = [queue[-1] for channel in channels if (queue := self._confirmations.get(channel))]
        if not waiting:
            return True
        done, _ = await asyncio.wait(waiting, timeout=timeout)
        return len(done) == len(waiting)

    async def close(self) -> None:
        """Send what is still in the outbox (briefly), then stop and close the connections."""
        if self._outbox and self._tasks:
            self._publish_wake.set()
            for _ in range(100):
                if not self._outbox:
                    break
                await asyncio.sleep(0.01)
        await cancel_and_wait(self._tasks)  # a cancel inside a redis-py pub/sub command can be swallowed
        self._tasks = []
        for queue in self._confirmations.values():
            for future in queue:
                future.cancel()
        self._confirmations.clear()
        self.receivers.clear()
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self.redis.aclose()

    def _command(self, command: str, channel: str) -> None:
        if command == SUBSCRIBE:
            future = asyncio.get_running_loop().create_future()
            self._confirmations.setdefault(channel, deque()).append(future)
        self._commands.append((command, channel))
        self._command_wake.set()

    async def _publisher(self) -> None:
        while True:
            await self._publish_wake.wait()
            self._publish_wake.clear()
            while self._outbox:
                batch, self._outbox = self._outbox, []
                try:
                    if len(batch) == 1:
                        await self.redis.publish(*batch[0])
                    else:
                        async with self.redis.pipeline(transaction=False) as pipe:
                            for channel, payload in batch:
                                pipe.publish(channel, payload)
                            await pipe.execute()
                    self.published += len(batch)
                except Exception as exc:
                    self._lost([channel for channel, _ in batch], f"Redis publish failed: {exc}")
                else:
                    if self._unlogged:
                        log.info(
                            "fan-out: publishing again; %d more messages lost since the last warning", self._unlogged
                        )
                        self._unlogged = 0

    def _lost(self, channels: list[str], why: str) -> None:
        """Count payloads that will never reach Redis; warn now unless a warning went out in the interval."""
        self.failed += len(channels)
        for prefix, count in self._loss_counters:
            mine = sum(1 for channel in channels if channel.startswith(prefix))
            if mine:
                count(mine)
        self._unlogged += len(channels)
        now = time.monotonic()
        if now - self._logged_at >= LOSS_LOG_INTERVAL:
            log.warning(
                "fan-out: %d messages lost (%s); %d lost in all; next report in %gs at the earliest",
                self._unlogged,
                why,
                self.failed,
                LOSS_LOG_INTERVAL,
            )
            self._unlogged = 0
            self._logged_at = now

    async def _commander(self) -> None:
        while True:
            await self._command_wake.wait()
            self._command_wake.clear()
            while self._commands:
                commands, self._commands = self._commands, []
                # Consecutive commands of one kind go out as one, in order.
                runs: list[tuple[str, list[str]]] = []
                for command, channel in commands:
                    if runs and runs[-1][0] == command:
                        runs[-1][1].append(channel)
                    else:
                        runs.append((command, [channel]))
                for command, channels in runs:
                    try:
                        if command == SUBSCRIBE:
                            await self._pubsub.subscribe(*channels)
                        else:
                            await self._pubsub.unsubscribe(*channels)
                    except Exception as exc:
                        log.warning("fan-out: %s failed: %s; will retry after reconnecting", command, exc)

    async def _reader(self) -> None:
        pubsub = self._pubsub
        failing = False
        while True:
            try:
                if pubsub.connection is None:
                    await pubsub.connect()  # type: ignore[no-untyped-call]
                message = await pubsub.get_message(timeout=None)
                if failing:
                    failing = False
                    log.info("fan-out: Redis reachable again")
                    self._reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning("fan-out: lost Redis (%s); reconnecting", exc)
                failing = True
                await asyncio.sleep(RETRY_DELAY)
                continue
            if message is not None:
                self._received(message)

    def _received(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        channel = message["channel"]
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        if kind == "message":
            for receiver in tuple(self.receivers.get(name, ())):
                try:
                    receiver(name, message["data"])
                except Exception:
                    log.exception("fan-out: receiver of %s failed", name)
        elif kind == "subscribe":
            queue = self._confirmations.get(name)
            if queue:
                future = queue.popleft()
                if not future.done():
                    future.set_result(None)
                if not queue:
                    del self._confirmations[name]

    def _reconcile(self) -> None:
        """After a reconnect: subscribe what we need and Redis lacks, drop what we no longer need."""
        have = {key.decode() if isinstance(key, bytes) else str(key) for key in self._pubsub.channels}
        for channel in self.receivers.keys() - have:
            self._command(SUBSCRIBE, channel)
        for channel in have - self.receivers.keys():
            self._command(UNSUBSCRIBE, channel)
