"""Channel fan-out between processes through Redis pub/sub, behind :class:`~gameserver.bus.LocalBus`'s
``publish`` / ``subscribe`` / ``unsubscribe``: the chat edge's channels and the players' pushes
(:class:`~gameserver.redisbus.RedisBus`).

Each process holds one subscriber connection. A channel is subscribed in Redis when its first local
receiver subscribes and unsubscribed when the last one leaves, so a process only hears the channels it has
members for. ``publish`` never waits: payloads go to an outbox that one task sends in order (pipelined when
several are waiting), so a process's messages reach Redis, and every subscriber, in the order published.

Pub/sub is fire-and-forget: a message published while a subscriber's connection is down is lost for it.
After a reconnect the subscriptions are restored (redis-py replays them; :meth:`RedisFanout._reconcile`
repairs any that a failed command left out).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from gameserver.bus import Receiver

log = logging.getLogger("gameserver.fanout")

RETRY_DELAY = 0.5  # seconds between attempts while Redis is unreachable
MAX_OUTBOX = 10_000  # payloads waiting for Redis; beyond it (Redis slow or down) new ones are dropped
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
        self.failed = 0  # payloads lost because Redis could not be reached

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
            self.failed += 1
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
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
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
                    self.failed += len(batch)
                    log.warning("fan-out: %d messages lost, Redis publish failed: %s", len(batch), exc)

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
