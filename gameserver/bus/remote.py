"""Requests between processes (issue 13; docs/architecture.md, "Scaling out"): what the Redis Streams bus and
the NATS bus share.

A *gate* (a process with the gate role and not the worker role) hands each request to the broker as a
:class:`Call`: the client's map as decoded plus the per-request context a worker needs (caller uid, session
claims, the client's address, connection id, reply format, deadline, message id and the gate's own id to reply
to). Any *worker* takes it, runs it through its :class:`~gameserver.dispatch.dispatcher.Dispatcher` with a
:class:`RemoteSession` standing in for the connection, and sends the reply to the gate that holds the connection
(:class:`Worker`). The gate delivers it (:class:`Gate`).

Exactly one reply: a gate keeps each request it sent, by message id, until the first reply or its deadline
(then it answers ``timeout`` itself); anything else that comes back for that id (a request run again after its
worker died) is dropped. Effects at most once: a worker hands the dispatcher the message id as the request's
idempotency key (the envelope's ``idem``, unless the client sent one), so a function registered idempotent runs
once per key however often the broker delivers it (issue 12's ``gameserver/dispatch/idempotency.py``: the key is
recorded in the same transaction as the handler's writes and a repeat gets the stored reply).

What ``session`` does on a worker travels back to the gate on the same path as the reply and before it:
``bind``/``unbind`` (the gate binds the real connection, so pushes find it; the reply that follows a bind waits
until the gate's pushes are subscribed, as in one process), ``close``, and pushes to that connection.

Bounded everywhere: a gate has at most ``remote.gate_inflight`` requests out (``overloaded`` past it, and while
the broker's queue is over ``remote.queue_max``); a worker takes at most ``worker.max_inflight`` at once, in
batches of ``remote.batch``. While the broker is unreachable a gate answers ``unavailable`` at once and retries
in the background; a worker keeps trying to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgpack
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gameserver import metrics
from gameserver.bus.fanout import RedisFanout
from gameserver.bus.redispubsub import RedisBus
from gameserver.bus.sessions import Session, Sessions
from gameserver.dispatch.dispatcher import Dispatcher
from gameserver.errors import GameError, Overloaded, RateLimited, Timeout, Unavailable
from gameserver.features.identity.tokens import Claims
from gameserver.keys import Keys
from gameserver.protocol.codec import Format
from gameserver.protocol.envelope import BadEnvelope, error_reply, parse_request
from gameserver.ratelimit import TokenBucket
from gameserver.tasks import cancel_and_wait

log = logging.getLogger("gameserver.bus.remote")

VERSION = 1  # first item of every encoded call and answer; bumped when their shape changes
FORMATS = (Format.MSGPACK, Format.JSON)  # a format travels as its index here
SWEEP_PERIOD = 0.05  # seconds between a gate's looks for requests past their deadline
RETRY_DELAY = 0.5  # seconds between attempts while the broker is unreachable
TROUBLE_LOG_EVERY = 30.0  # seconds between warnings about the same broker trouble
FULL_WAIT = 0.05  # seconds a full worker waits before it looks at the dispatcher's room again
IDEM = "idem"  # the envelope's idempotency key (docs/PROTOCOL.md, "Idempotency keys")


# -- what travels ------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Call:
    """One request on its way from a gate to a worker."""

    mid: str  # message id, unique across gates: "<gate id>.<n>"
    gate: str  # the gate that holds the connection and takes the reply
    conn: int  # the connection's id on that gate
    fmt: Format  # the reply's format (the request's)
    deadline: float  # seconds since the epoch after which the gate has answered `timeout`
    uid: int | None  # the connection's binding
    claims: Claims | None  # of the token or login that bound it
    remote: str  # the client's address (per-address limits)
    message: dict[str, Any]  # the client's request map, as decoded


def encode_call(call: Call) -> bytes:
    claims = None if call.claims is None else (call.claims.uid, call.claims.issued_ms, call.claims.auth_time)
    fmt = FORMATS.index(call.fmt)
    row = (VERSION, call.mid, call.gate, call.conn, fmt, call.deadline, call.uid, claims, call.remote, call.message)
    data: bytes = msgpack.packb(row)
    return data


def decode_call(data: bytes) -> Call:
    """Raises ValueError for anything that is not a call of this version."""
    try:
        row = msgpack.unpackb(data, raw=False, strict_map_key=False)
        version, mid, gate, conn, fmt, deadline, uid, claims, remote, message = row
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"not a call: {exc}") from exc
    if version != VERSION or not isinstance(message, dict):
        raise ValueError(f"not a call of version {VERSION}")
    return Call(
        mid, gate, conn, FORMATS[fmt], deadline, uid, None if claims is None else Claims(*claims), remote, message
    )


# What a worker sends back to a gate: [kind, mid, conn, ...].
REPLY = 0  # [REPLY, mid, conn, fmt, reply map]: the one answer
BIND = 1  # [BIND, mid, conn, uid, claims]: session.bind on the worker
UNBIND = 2  # [UNBIND, mid, conn]
CLOSE = 3  # [CLOSE, mid, conn, code, reason]
PUSH = 4  # [PUSH, mid, conn, event, data]: session.push on the worker
RESUMABLE = 5  # [RESUMABLE, mid, conn]: session.resumable() on the worker; the gate adds "resume" to the reply


def encode_answer(kind: int, mid: str, conn: int, *rest: Any) -> bytes:
    """Raises TypeError/ValueError when ``rest`` has no msgpack form."""
    data: bytes = msgpack.packb((kind, mid, conn, *rest))
    return data


# -- the broker, as each side sees it ----------------------------------------------------------------------------


class BrokerError(Exception):
    """The broker could not take or give messages (down, unreachable, or refusing)."""


@dataclass(slots=True)
class Delivery:
    """A call handed to a worker: ``token`` is what the broker needs to acknowledge it."""

    token: Any
    payload: bytes
    redelivered: bool  # taken over from a worker that did not finish it


class GateTransport(Protocol):
    async def start_gate(self, gid: str, node: str, on_answer: Callable[[bytes], None]) -> None:
        """Listen for answers to ``gid`` (calls ``on_answer`` with each) and announce the gate."""

    async def send(self, calls: list[tuple[str, bytes]]) -> None:
        """Queue ``(mid, encoded call)`` pairs for the workers. Raises :class:`BrokerError`."""

    async def heartbeat(self) -> int:
        """Renew the gate's ``gates.id.<gid>`` entry; returns the queue depth. Raises :class:`BrokerError`."""
        ...

    async def depth(self) -> int:
        """Calls queued or being worked on. Raises :class:`BrokerError`."""
        ...

    async def close(self) -> None: ...


class WorkerTransport(Protocol):
    async def start_worker(self, consumer: str) -> None:
        """Join the workers (create the group or consumer if needed). Raises :class:`BrokerError`."""

    async def fetch(self, count: int) -> list[Delivery]:
        """Up to ``count`` calls, waiting a little when there are none: abandoned ones first (taken over from a
        dead worker after ``remote.reclaim_after``), then new ones. Raises :class:`BrokerError`."""
        ...

    async def flush(self, answers: list[tuple[str, bytes]], done: list[Delivery]) -> None:
        """Send ``(gate id, answer)`` pairs in order, then acknowledge ``done``. Raises :class:`BrokerError`."""

    async def touch(self, running: list[Delivery]) -> None:
        """Tell the broker these are still being worked on, so it does not hand them to another worker."""

    async def depth(self) -> int:
        """Calls queued or being worked on. Raises :class:`BrokerError`."""
        ...

    async def gate_alive(self, gid: str) -> bool:
        """Whether gate ``gid`` has renewed its ``gates.id.<gid>`` entry lately. Raises :class:`BrokerError`."""
        ...

    async def close(self) -> None: ...


@dataclass
class BusStats:
    """What ``/healthz`` and ``/metrics`` show of the remote bus (both sides; a process may be both)."""

    state: str = "starting"  # "up" or what is wrong
    queue_depth: int = 0  # as of the last heartbeat or probe
    gate_inflight: int = 0
    worker_inflight: int = 0
    sent: int = 0
    answered: int = 0
    timeouts: int = 0
    unavailable: int = 0
    overloaded: int = 0
    duplicates: int = 0  # answers dropped: the request was answered already (or timed out)
    redeliveries: int = 0  # calls a worker took over from another
    expired: int = 0  # calls a worker dropped unrun: past their deadline
    extra: dict[str, Any] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "queue_depth": self.queue_depth,
            "gate_inflight": self.gate_inflight,
            "worker_inflight": self.worker_inflight,
            "sent": self.sent,
            "answered": self.answered,
            "timeouts": self.timeouts,
            "unavailable": self.unavailable,
            "overloaded": self.overloaded,
            "duplicates": self.duplicates,
            "redeliveries": self.redeliveries,
            "expired": self.expired,
        }


STATS = BusStats()
"""This process's (one gate or worker each at most): ``/healthz``, ``/metrics``."""


class _BusCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        stats = STATS
        if stats.state == "starting":
            return  # no remote bus in this process
        yield GaugeMetricFamily(
            "gameserver_bus_up", "1 while the broker between gates and workers answers", value=int(stats.state == "up")
        )
        yield GaugeMetricFamily(
            "gameserver_bus_queue_depth",
            "Requests in the broker, waiting or running, as last seen",
            value=stats.queue_depth,
        )
        inflight = GaugeMetricFamily(
            "gameserver_bus_inflight", "Requests out (gate) or running (worker) over the broker", labels=["side"]
        )
        inflight.add_metric(["gate"], stats.gate_inflight)
        inflight.add_metric(["worker"], stats.worker_inflight)
        yield inflight
        requests = CounterMetricFamily(
            "gameserver_bus_requests",
            "Requests a gate sent to remote workers, and how they ended when not with the worker's reply",
            labels=["outcome"],
        )
        for outcome, value in (
            ("sent", stats.sent),
            ("answered", stats.answered),
            ("timeout", stats.timeouts),
            ("unavailable", stats.unavailable),
            ("overloaded", stats.overloaded),
        ):
            requests.add_metric([outcome], value)
        yield requests
        yield CounterMetricFamily(
            "gameserver_bus_duplicates", "Second answers to one request, dropped by the gate", value=stats.duplicates
        )
        yield CounterMetricFamily(
            "gameserver_bus_redeliveries",
            "Requests a worker took over from a worker that stopped",
            value=stats.redeliveries,
        )
        yield CounterMetricFamily(
            "gameserver_bus_expired",
            "Requests a worker dropped unrun: past their deadline, or their gate gone",
            value=stats.expired,
        )


metrics.REGISTRY.register(_BusCollector())


class _Trouble:
    """Logs a broker problem once, then every :data:`TROUBLE_LOG_EVERY` seconds, and once when it is over."""

    def __init__(self, what: str, stats: BusStats) -> None:
        self.what = what
        self.stats = stats
        self.since: float | None = None
        self.logged = 0.0

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self.stats.state = f"{type(exc).__name__}: {exc}"[:200]
        if self.since is None:
            self.since = now
        if now - self.logged >= TROUBLE_LOG_EVERY:
            self.logged = now
            log.warning("%s: broker unavailable: %s: %s", self.what, type(exc).__name__, exc)

    def ok(self) -> None:
        self.stats.state = "up"
        if self.since is not None:
            log.warning("%s: broker back after %.1fs", self.what, time.monotonic() - self.since)
            self.since = None
            self.logged = 0.0


# -- the gate side -----------------------------------------------------------------------------------------------


class _Pending:
    __slots__ = ("session", "fmt", "request_id", "deadline", "binding", "resume")

    def __init__(self, session: Session, fmt: Format, request_id: int, deadline: float) -> None:
        self.session = session
        self.fmt = fmt
        self.request_id = request_id
        self.deadline = deadline  # loop time
        self.binding: asyncio.Task[bool] | None = None  # session.bound() after a remote bind
        self.resume: dict[str, Any] | None = None  # the reply's "resume" object, made here (docs/PROTOCOL.md, "Resume")


class Gate:
    """The gate side: :meth:`submit` is the ``Bus.submit`` of a process whose gate has no worker beside it.

    Args:
        transport: the broker.
        node: this process's node id (for the registry and logs).
        timeout: seconds a request may take before the gate answers ``timeout``.
        max_inflight: requests out at once; more are answered ``overloaded``.
        queue_max: queue depth (last seen) past which new requests are answered ``overloaded``.
        heartbeat: seconds between renewals of ``gates.id.<gid>`` (and looks at the queue depth).
    """

    def __init__(
        self,
        transport: GateTransport,
        *,
        node: str,
        timeout: float,
        max_inflight: int,
        queue_max: int,
        heartbeat: float,
        stats: BusStats | None = None,
    ) -> None:
        self.transport = transport
        self.node = node
        self.gid = secrets.token_hex(8)
        self.timeout = timeout
        self.max_inflight = max_inflight
        self.queue_max = queue_max
        self.heartbeat_period = heartbeat
        self.stats = STATS if stats is None else stats
        self.pending: dict[str, _Pending] = {}  # by mid, in the order sent: deadlines ascend
        self._ids = itertools.count(1)
        self._outbox: list[tuple[str, bytes]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._down = False  # the broker failed last time: answer `unavailable` until a heartbeat gets through
        self._trouble = _Trouble(f"gate {self.gid}", self.stats)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Listen for answers and start sending; the broker may be down (requests answer ``unavailable``)."""
        try:
            await self.transport.start_gate(self.gid, self.node, self._answered)
            self.stats.queue_depth = await self.transport.heartbeat()
            self._trouble.ok()
        except BrokerError as exc:
            self._down = True
            self._trouble.failed(exc)
        self._tasks = [
            asyncio.create_task(self._sender(), name="gate-send"),
            asyncio.create_task(self._sweeper(), name="gate-sweep"),
            asyncio.create_task(self._heartbeat(), name="gate-heartbeat"),
        ]
        log.info("gate %s of node %s sends requests to remote workers", self.gid, self.node)

    async def drain(self, timeout: float) -> bool:
        """Wait until every request sent has its answer (or its timeout), at most ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)
        for mid in list(self.pending):  # the answers would have nowhere to go now
            self._finish(mid, Unavailable("the server is shutting down"))
        await self.transport.close()

    @property
    def inflight(self) -> int:
        return len(self.pending)

    # The hot path: a driver calls it for each decoded map.
    def submit(self, message: dict[str, Any], session: Session, fmt: Format) -> None:
        try:
            request = parse_request(message)
        except BadEnvelope as exc:
            _send(session, fmt, error_reply(exc.request_id, exc.code, exc.message))
            return
        now = time.monotonic()
        error: GameError | None = None
        if not session.bucket.take(now):
            error = RateLimited("over the connection's request rate")
        elif self._down:
            error = Unavailable()
            self.stats.unavailable += 1
        elif len(self.pending) >= self.max_inflight or self.stats.queue_depth > self.queue_max:
            error = Overloaded()
            self.stats.overloaded += 1
        if error is not None:
            _send(session, fmt, error_reply(request.id, error.code, error.message))
            return
        mid = f"{self.gid}.{next(self._ids)}"
        call = Call(
            mid,
            self.gid,
            session.id,
            fmt,
            time.time() + self.timeout,
            session.uid,
            session.claims,
            session.remote,
            message,
        )
        try:
            data = encode_call(call)
        except (TypeError, ValueError, OverflowError):  # a JSON number msgpack cannot hold, say
            _send(session, fmt, error_reply(request.id, "bad_request", "args have no msgpack form"))
            return
        self.pending[mid] = _Pending(session, fmt, request.id, now + self.timeout)
        session.pending += 1
        self._idle.clear()
        self._outbox.append((mid, data))
        self._wake.set()

    def _finish(self, mid: str, error: GameError | None = None, reply: dict[str, Any] | None = None) -> None:
        """Answer ``mid`` once: with ``reply``, or ``error``."""
        pending = self.pending.pop(mid, None)
        if pending is None:
            return
        session = pending.session
        message = reply if reply is not None else error_reply(pending.request_id, error.code, error.message)  # type: ignore[union-attr]
        if session.is_open():
            try:
                session.send(message, pending.fmt)
            except (TypeError, ValueError, OverflowError):  # msgpack from the worker with no JSON form
                log.warning("gate: reply to %s has no %s form", mid, pending.fmt.value)
                _send(session, pending.fmt, error_reply(pending.request_id, "internal", "programming error"))
        session.pending -= 1
        if not session.pending:
            session.idle()
        if not self.pending:
            self._idle.set()

    def _answered(self, payload: bytes) -> None:
        """An answer from a worker, in the order the worker sent it."""
        try:
            kind, mid, conn, *rest = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        except (ValueError, TypeError, msgpack.UnpackException):
            log.warning("gate: bad answer: %r", payload[:200])
            return
        pending = self.pending.get(mid)
        if pending is None:
            if kind == REPLY:
                self.stats.duplicates += 1
            return
        session = pending.session
        if kind == REPLY:
            self.stats.answered += 1
            reply = rest[1]
            if pending.resume is not None and reply.get("ok") and isinstance(reply.get("data"), dict):
                reply["data"]["resume"] = pending.resume
            if pending.binding is not None and not pending.binding.done():
                # As in one process, the reply to a login means the player's pushes reach this connection.
                pending.binding.add_done_callback(lambda _: self._finish(mid, reply=reply))
            else:
                self._finish(mid, reply=reply)
        elif kind == BIND:
            uid, claims = rest
            session.bind(uid, None if claims is None else Claims(*claims))
            # auth.single_session closes the player's connections bound before its broadcast time, which the worker
            # took after this bind: stamped on arrival here, this one is later (the broadcast may come first, while
            # this connection is not yet the player's, and then passes it by).
            session.bound_us = time.time_ns() // 1000
            pending.binding = asyncio.ensure_future(session.bound())
        elif kind == UNBIND:
            session.unbind()
        elif kind == CLOSE:
            session.close(*rest)
        elif kind == PUSH:
            if session.is_open():
                session.push(*rest)
        elif kind == RESUMABLE:
            pending.resume = session.resumable()

    async def _sender(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._outbox = self._outbox, []
            try:
                await self.transport.send(batch)
            except BrokerError as exc:
                self._down = True
                self._trouble.failed(exc)
                for mid, _ in batch:
                    self.stats.unavailable += 1
                    self._finish(mid, Unavailable())
            else:
                self.stats.sent += len(batch)

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_PERIOD)
            now = time.monotonic()
            for mid, pending in list(self.pending.items()):
                if pending.deadline > now:
                    break
                self.stats.timeouts += 1
                self._finish(mid, Timeout())
            self.stats.gate_inflight = len(self.pending)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(RETRY_DELAY if self._down else self.heartbeat_period)
            try:
                self.stats.queue_depth = await self.transport.heartbeat()
            except BrokerError as exc:
                self._down = True
                self._trouble.failed(exc)
            else:
                self._down = False
                self._trouble.ok()


def _send(session: Session, fmt: Format, message: dict[str, Any]) -> None:
    if session.is_open():
        session.send(message, fmt)


class GateBus(RedisBus):
    """The bus of a gate without a worker: pushes and channels through Redis pub/sub (as :class:`RedisBus`),
    requests through ``gate`` to remote workers."""

    def __init__(self, sessions: Sessions, fanout: RedisFanout, keys: Keys, gate: Gate) -> None:
        super().__init__(sessions, fanout, keys)
        self.gate = gate
        self.submit = gate.submit  # type: ignore[method-assign]

    async def close(self) -> None:
        await self.gate.close()
        await super().close()


# -- the worker side ---------------------------------------------------------------------------------------------


class _Unlimited(TokenBucket):
    """The gate has charged the connection's rate already."""

    def __init__(self) -> None:
        super().__init__(1.0, 1.0, 0.0)

    def take(self, now: float, cost: float = 1.0) -> bool:
        return True


_UNLIMITED = _Unlimited()


class RemoteSession(Session):
    """The caller's connection as a handler on a worker sees it: what it does goes back to its gate.

    Not in this process's :class:`Sessions`: pushes to the player reach the real connection through the gate's
    subscription, once.
    """

    kind = "remote"

    def __init__(self, worker: Worker, call: Call, delivery: Delivery, sessions: Sessions) -> None:
        super().__init__(sessions, _UNLIMITED)
        self.worker = worker
        self.call = call
        self.delivery = delivery
        self.id = call.conn
        self.uid = call.uid
        self.claims = call.claims
        self.push_format = call.fmt
        self.answered = False

    @property
    def remote(self) -> str:
        return self.call.remote

    @property
    def peer(self) -> str:
        return f"{self.call.gate}/{self.call.conn}"

    @property
    def scope(self) -> str:
        return f"conn:{self.call.gate}-{self.call.conn}"

    @property
    def message_id(self) -> str:
        """Unique per request, the same when the broker hands it to another worker: the key that makes a write
        happen once."""
        return self.call.mid

    def send(self, message: dict[str, Any], fmt: Format) -> None:
        """The reply (the dispatcher calls it once per request)."""
        data = encode_answer(REPLY, self.call.mid, self.call.conn, FORMATS.index(fmt), message)
        if not self.answered:
            self.answered = True
            self.worker._answer(self, data, done=True)

    def push(self, event: str, data: Any) -> None:
        self.worker._answer(self, encode_answer(PUSH, self.call.mid, self.call.conn, event, data), done=False)

    def bind(self, uid: int, claims: Claims | None = None) -> None:
        self.uid = uid
        self.claims = claims
        wire = None if claims is None else (claims.uid, claims.issued_ms, claims.auth_time)
        self.worker._answer(self, encode_answer(BIND, self.call.mid, self.call.conn, uid, wire), done=False)

    async def bound(self, timeout: float = 0.0) -> bool:
        return True  # the gate holds the reply until its subscription is confirmed

    def resumable(self) -> dict[str, Any] | None:
        self.worker._answer(self, encode_answer(RESUMABLE, self.call.mid, self.call.conn), done=False)
        return None  # the gate holds the connection and its resumable state, and adds "resume" to the reply

    def unbind(self) -> None:
        self.uid = None
        self.claims = None
        self.worker._answer(self, encode_answer(UNBIND, self.call.mid, self.call.conn), done=False)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.worker._answer(self, encode_answer(CLOSE, self.call.mid, self.call.conn, code, reason), done=False)


class Worker:
    """Takes calls from the broker and runs them through ``dispatcher``; started by a process with the worker
    role when ``server.bus`` is ``redis`` or ``nats``.

    Args:
        transport: the broker.
        dispatcher: runs the handlers (its ``max_inflight`` bounds the calls taken at once).
        sessions: this process's sessions (a handler's ``session`` is not added to them).
        node: this process's id, the start of its consumer name.
        batch: calls read at most per fetch.
        touch_every: seconds between telling the broker the running calls are still alive.
    """

    def __init__(
        self,
        transport: WorkerTransport,
        dispatcher: Dispatcher,
        sessions: Sessions,
        *,
        node: str,
        batch: int,
        touch_every: float,
        stats: BusStats | None = None,
    ) -> None:
        self.transport = transport
        self.dispatcher = dispatcher
        self.sessions = sessions
        self.consumer = f"{node}-{secrets.token_hex(4)}"
        self.batch = batch
        self.touch_every = touch_every
        self.stats = STATS if stats is None else stats
        self.running: dict[int, Delivery] = {}  # by id() of the delivery
        self._answers: list[tuple[str, bytes]] = []
        self._done: list[Delivery] = []
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._trouble = _Trouble(f"worker {self.consumer}", self.stats)
        self._fetching: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._reruns: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def max_inflight(self) -> int:
        return self.dispatcher.max_inflight

    async def start(self) -> None:
        """Start taking calls; the broker may be down (the fetch loop keeps trying)."""
        self._fetching = asyncio.create_task(self._fetch_loop(), name="worker-fetch")
        self._tasks = [
            asyncio.create_task(self._flusher(), name="worker-flush"),
            asyncio.create_task(self._toucher(), name="worker-touch"),
        ]
        log.info("worker %s takes requests from remote gates", self.consumer)

    async def stop_taking(self) -> None:
        """Take no more calls (a graceful stop: those running finish and are answered)."""
        if self._fetching is not None:
            await cancel_and_wait([self._fetching])
        await cancel_and_wait(list(self._reruns))  # taken over but not started: the broker hands them out again

    async def close(self) -> None:
        """After the dispatcher's drain: send what is left, stop. Once; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        await self.stop_taking()
        if self._answers or self._done:
            try:
                await self.transport.flush(*self._take())
            except BrokerError as exc:
                self._trouble.failed(exc)
        await cancel_and_wait(self._tasks)
        await self.transport.close()

    async def _fetch_loop(self) -> None:
        joined = False
        while True:
            # The dispatcher's bound covers this process's own gate too, if it has one.
            room = min(self.batch, self.max_inflight - self.dispatcher.inflight, self.max_inflight - len(self.running))
            if room <= 0:
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(FULL_WAIT):  # a local request ending does not set _room
                        await self._room.wait()
                continue
            try:
                if not joined:
                    await self.transport.start_worker(self.consumer)
                    joined = True
                deliveries = await self.transport.fetch(room)
            except BrokerError as exc:
                self._trouble.failed(exc)
                await asyncio.sleep(RETRY_DELAY)
                continue
            self._trouble.ok()
            for delivery in deliveries:
                self._run(delivery)

    def _run(self, delivery: Delivery) -> None:
        try:
            call = decode_call(delivery.payload)
        except ValueError as exc:
            log.warning("worker: dropping a bad call: %s", exc)
            self._done.append(delivery)
            self._wake.set()
            return
        if call.deadline <= time.time():  # its gate has answered `timeout`: running it now would surprise the player
            self.stats.expired += 1
            self._done.append(delivery)
            self._wake.set()
            return
        if IDEM not in call.message:  # the message id makes a redelivered request's writes happen once
            call.message[IDEM] = call.mid
        self.running[id(delivery)] = delivery
        self.stats.worker_inflight = len(self.running)
        if delivery.redelivered:
            self.stats.redeliveries += 1
            task = asyncio.create_task(self._rerun(call, delivery))
            self._reruns.add(task)
            task.add_done_callback(self._reruns.discard)
            return
        self.dispatcher.dispatch(call.message, RemoteSession(self, call, delivery, self.sessions), call.fmt)

    async def _rerun(self, call: Call, delivery: Delivery) -> None:
        """A call taken over from a worker that stopped: run it again unless its gate is gone (its answer would
        go nowhere, and the player reconnecting elsewhere may be doing it again)."""
        try:
            alive = await self.transport.gate_alive(call.gate)
        except BrokerError:
            alive = True  # let the broker's trouble show in the reply's flush
        if not alive:
            self.stats.expired += 1
            self.running.pop(id(delivery), None)
            self.stats.worker_inflight = len(self.running)
            self._done.append(delivery)
            self._room.set()
            self._wake.set()
            return
        self.stats.worker_inflight = len(self.running)
        self.dispatcher.dispatch(call.message, RemoteSession(self, call, delivery, self.sessions), call.fmt)

    def _answer(self, session: RemoteSession, data: bytes, *, done: bool) -> None:
        self._answers.append((session.call.gate, data))
        if done:
            self.running.pop(id(session.delivery), None)
            self.stats.worker_inflight = len(self.running)
            self._done.append(session.delivery)
            self._room.set()
        self._wake.set()

    def _take(self) -> tuple[list[tuple[str, bytes]], list[Delivery]]:
        answers, done = self._answers, self._done
        self._answers, self._done = [], []
        return answers, done

    async def _flusher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            answers, done = self._take()
            try:
                await self.transport.flush(answers, done)
            except BrokerError as exc:
                # The answers are lost (their gates answer `timeout`); the calls stay unacknowledged and another
                # worker takes them after remote.reclaim_after, to be answered if still in time.
                self._trouble.failed(exc)

    async def _toucher(self) -> None:
        while True:
            await asyncio.sleep(self.touch_every)
            try:
                if self.running:
                    await self.transport.touch(list(self.running.values()))
                self.stats.queue_depth = await self.transport.depth()
            except BrokerError as exc:
                self._trouble.failed(exc)
