"""Requests between processes over NATS JetStream (``server.bus = "nats"``; the shared part is ``remote.py``).

Names, from ``redis.prefix`` made NATS-safe (``gs:`` -> ``gs``):

| name | kind | holds |
|---|---|---|
| ``<p>_requests`` | JetStream stream (work queue, in memory), subject ``<p>.requests`` | calls waiting or running |
| ``workers`` | its durable pull consumer, explicit acks, ``ack_wait`` = ``remote.reclaim_after`` | who has which call |
| ``<p>_gates`` | key-value bucket, TTL ``remote.gate_ttl`` | ``id.<gid>`` -> a live gate's node id |
| ``<p>.gate.<gid>`` | core subject | the answers to one gate, in the order each worker sent them |

A gate publishes each call to the stream and waits for JetStream's acknowledgement (a batch at once), so a call
the stream did not take is answered ``unavailable``. Workers pull batches from the one durable consumer;
JetStream hands a call nobody acknowledged within ``ack_wait`` to another worker (a live worker marks its
running calls in progress every third of that time). The acknowledgement follows the reply. Answers are
core NATS messages: with no gate subscribed they vanish, nothing piles up. The message id -> gate id mapping
travels in the call itself (NATS has no cheap per-message key with a TTL; the reply subject is the mapping).

Pushes and chat channels still go through Redis pub/sub (``RedisBus``): Redis stays required to scale out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.kv import KeyValue

from gameserver.bus.remote import BrokerError, Delivery

log = logging.getLogger("gameserver.bus.nats")

CONSUMER = "workers"
FETCH_WAIT = 1.0  # seconds an idle worker's pull waits
BATCH_WAIT = 0.0005  # seconds a worker's pull for more after the first call waits for what is queued
CONNECT_TIMEOUT = 2  # seconds (nats-py takes whole seconds)
RECONNECT_WAIT = 1  # second between attempts once connected (nats-py reconnects by itself)
REQUEST_TIMEOUT = 2.0  # seconds for JetStream to acknowledge a batch of calls (then `unavailable`)
STREAM_MAX_AGE = 300.0  # seconds a call may wait in the stream at most (far past any deadline)
MAX_DELIVER = 10  # times JetStream hands one call out before giving up on it


def subject_prefix(prefix: str) -> str:
    """``redis.prefix`` as a NATS subject token and stream-name part: ``gs:`` -> ``gs``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", prefix.rstrip(":._")) or "gs"


class NatsStreams:
    """Both sides of the remote bus on NATS JetStream.

    Args:
        url: the NATS server (``remote.nats_url``).
        prefix: the start of every name (:func:`subject_prefix`).
        reclaim_after: seconds a call may go unacknowledged and untouched before another worker gets it.
        gate_ttl: seconds a gate's ``id.<gid>`` lives without a heartbeat.
    """

    def __init__(self, url: str, prefix: str, *, reclaim_after: float, gate_ttl: float) -> None:
        self.url = url
        self.prefix = prefix
        self.stream = f"{prefix}_requests"
        self.subject = f"{prefix}.requests"
        self.bucket = f"{prefix}_gates"
        self.reclaim_after = reclaim_after
        self.gate_ttl = gate_ttl
        self.gid = ""
        self.node = ""
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._lock = asyncio.Lock()
        self._on_answer: Callable[[bytes], None] | None = None
        self._pull: JetStreamContext.PullSubscription | None = None
        self._consumer = ""
        self._subscribed = False
        self._declared = False
        self._pulls: list[JetStreamContext.PullSubscription] = []  # pull subscriptions made, to drop when replaced

    def answers_subject(self, gid: str) -> str:
        return f"{self.prefix}.gate.{gid}"

    async def _connect(self) -> tuple[Client, JetStreamContext]:
        """The connection, made on first use (nats-py reconnects by itself after that), with the stream and the
        bucket declared: again after every reconnect, as a NATS that restarted lost them (they are in memory)."""
        if self._nc is not None and self._js is not None and self._declared:
            if not self._nc.is_connected:
                raise BrokerError("NATS connection lost; reconnecting")
            return self._nc, self._js
        async with self._lock:
            if self._nc is None or self._js is None:
                nc = Client()
                try:
                    # Bounded: with max_reconnect_attempts=-1, nats-py would try a server that is down for ever.
                    async with asyncio.timeout(CONNECT_TIMEOUT):
                        await nc.connect(
                            self.url,
                            connect_timeout=CONNECT_TIMEOUT,
                            reconnect_time_wait=RECONNECT_WAIT,
                            max_reconnect_attempts=-1,
                            allow_reconnect=True,
                            error_cb=self._error,
                            disconnected_cb=self._disconnected,
                            reconnected_cb=self._reconnected,
                        )
                except (OSError, nats.errors.Error, TimeoutError) as exc:
                    await nc.close()
                    raise BrokerError(f"NATS unreachable at {self.url}: {type(exc).__name__}: {exc}") from exc
                self._nc, self._js = nc, nc.jetstream(timeout=REQUEST_TIMEOUT)
            if not self._nc.is_connected:
                raise BrokerError("NATS connection lost; reconnecting")
            if not self._declared:
                await self._declare(self._js)
                self._declared = True
        return self._nc, self._js

    @contextlib.asynccontextmanager
    async def _using(self) -> AsyncIterator[tuple[Client, JetStreamContext]]:
        """The connection for one operation; what NATS raises becomes :class:`BrokerError`."""
        nc, js = await self._connect()
        try:
            yield nc, js
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            self._declared = False  # the stream may be gone (a restarted NATS): declare it before the next try
            raise BrokerError(f"{type(exc).__name__}: {exc}") from exc

    async def _declare(self, js: JetStreamContext) -> None:
        config = StreamConfig(
            name=self.stream,
            subjects=[self.subject],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.MEMORY,
            max_age=STREAM_MAX_AGE,
        )
        try:
            try:
                await js.add_stream(config)
            except nats.js.errors.BadRequestError:  # exists with other settings (an older version's)
                await js.update_stream(config)
            self._kv = await js.create_key_value(
                KeyValueConfig(bucket=self.bucket, ttl=self.gate_ttl, storage=StorageType.MEMORY)
            )
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            raise BrokerError(f"JetStream refused the stream: {type(exc).__name__}: {exc}") from exc
        self._pull = None  # the consumer may be gone with the stream: the next fetch subscribes again

    async def _error(self, exc: Exception) -> None:
        log.debug("nats: %s: %s", type(exc).__name__, exc)

    async def _disconnected(self) -> None:
        self._declared = False
        if self._nc is not None:  # not our own close
            log.warning("nats: disconnected from %s", self.url)

    async def _reconnected(self) -> None:
        log.info("nats: reconnected to %s", self.url)

    # -- gate

    async def start_gate(self, gid: str, node: str, on_answer: Callable[[bytes], None]) -> None:
        self.gid = gid
        self.node = node
        self._on_answer = on_answer
        await self._subscribe_answers()

    async def _subscribe_answers(self) -> None:
        """Once: nats-py restores the subscription after a reconnect."""
        on_answer = self._on_answer
        if on_answer is None or self._subscribed:
            return

        async def receive(msg: Msg) -> None:
            on_answer(msg.data)

        async with self._using() as (nc, _):
            await nc.subscribe(self.answers_subject(self.gid), cb=receive)
            await nc.flush(timeout=CONNECT_TIMEOUT)
        self._subscribed = True

    async def send(self, calls: list[tuple[str, bytes]]) -> None:
        await self._subscribe_answers()  # if NATS was down when the gate started
        async with self._using() as (_, js):
            futures = [await js.publish_async(self.subject, data, wait_stall=REQUEST_TIMEOUT) for _, data in calls]
            async with asyncio.timeout(REQUEST_TIMEOUT):
                acks = await asyncio.gather(*futures, return_exceptions=True)
            failed = [ack for ack in acks if isinstance(ack, BaseException)]
            if failed:
                raise nats.errors.Error(f"JetStream did not take {len(failed)} calls: {failed[0]!r}")

    async def heartbeat(self) -> int:
        await self._subscribe_answers()
        async with self._using() as (_, js):
            assert self._kv is not None
            await self._kv.put(f"id.{self.gid}", self.node.encode())
            info = await js.stream_info(self.stream)
        return int(info.state.messages)

    # -- worker

    async def start_worker(self, consumer: str) -> None:
        self._consumer = consumer
        await self._pull_subscription()

    async def _pull_subscription(self) -> JetStreamContext.PullSubscription:
        async with self._using() as (_, js):
            if self._pull is None:
                config = ConsumerConfig(
                    durable_name=CONSUMER,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=self.reclaim_after,
                    max_deliver=MAX_DELIVER,
                    max_ack_pending=-1,
                )
                stale, self._pulls = self._pulls, []
                for old in stale:  # of a consumer that went with a restarted NATS
                    with contextlib.suppress(nats.errors.Error, TimeoutError, OSError):
                        await old.unsubscribe()
                self._pull = await js.pull_subscribe(self.subject, durable=CONSUMER, stream=self.stream, config=config)
                self._pulls.append(self._pull)
            return self._pull

    async def fetch(self, count: int) -> list[Delivery]:
        pull = await self._pull_subscription()
        async with self._using():
            # One, waiting for it: a pull for a whole batch would hold a first call until the batch fills or the
            # wait ends. Then what is queued already, with a short wait.
            try:
                msgs = await pull.fetch(1, timeout=FETCH_WAIT)
            except nats.errors.TimeoutError:
                return []  # nothing to do
            if count > 1:
                with contextlib.suppress(nats.errors.TimeoutError):
                    msgs += await pull.fetch(count - 1, timeout=BATCH_WAIT)
        return [Delivery(msg, msg.data, msg.metadata.num_delivered > 1) for msg in msgs]

    async def flush(self, answers: list[tuple[str, bytes]], done: list[Delivery]) -> None:
        async with self._using() as (nc, _):
            for gate, data in answers:
                await nc.publish(self.answers_subject(gate), data)
            for delivery in done:
                msg: Msg = delivery.token
                await msg.ack()

    async def touch(self, running: list[Delivery]) -> None:
        async with self._using():
            for delivery in running:
                msg: Msg = delivery.token
                await msg.in_progress()

    async def depth(self) -> int:
        async with self._using() as (_, js):
            info = await js.stream_info(self.stream)
        return int(info.state.messages)

    async def gate_alive(self, gid: str) -> bool:
        async with self._using():
            assert self._kv is not None
            try:
                await self._kv.get(f"id.{gid}")
            except nats.js.errors.KeyNotFoundError:
                return False
        return True

    async def close(self) -> None:
        nc = self._nc
        if nc is None:
            return
        if self.gid and self._kv is not None and nc.is_connected:
            try:
                async with asyncio.timeout(1.0):
                    await self._kv.delete(f"id.{self.gid}")
            except (nats.errors.Error, TimeoutError, OSError):
                pass  # it expires
        self._nc = None
        try:
            await nc.flush(timeout=CONNECT_TIMEOUT)  # the last answers and acknowledgements
        except (nats.errors.Error, TimeoutError, OSError):
            pass
        await nc.close()
