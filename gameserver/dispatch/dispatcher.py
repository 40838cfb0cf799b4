"""The message handler (seed 003): from a decoded request map to a reply on the caller's session.

Checks run in PROTOCOL.md's order, the first failure answering: envelope (``bad_request``), the
function's existence (``unknown_function``), login (``unauthorized``), the arguments (``bad_request``).
Around them the connection's rate (``rate_limited``) and the worker's bound on requests in flight
(``overloaded``). The handler then runs as a task under its deadline (``timeout``). Only this module turns
exceptions into replies: a :class:`GameError` becomes its code; a backend that is down, or a transaction
that kept losing lock conflicts (a deadlock past ``db.retries``), becomes ``unavailable``; anything else
becomes ``internal`` / ``programming error`` with the traceback logged under a correlation id; the reply carries
that id (``cid``) so that support can find the log line, and nothing of the exception, except in development
(``server.dev``), where it also names the exception and its file:line (docs/PROTOCOL.md, "Internal errors").

Shutdown (:meth:`stop_taking`, :meth:`drain`, :meth:`cancel_all`): a request that arrives once the shutdown began is
answered ``unavailable`` ("not run"); the requests already running finish and are answered as usual; one still
running at the end of the grace is cancelled and answered ``outcome_unknown`` (PROTOCOL.md, "gameserver specifics"):
it may have been applied, so a client must not take it for a failure that did nothing.

Deadlines are enforced by one sweep over the requests in flight (every ``sweep_period`` seconds) instead of
a timer per request: the hot path stores a float, and a deadline fires at most one period late.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from gameserver import metrics
from gameserver.bus.sessions import Session
from gameserver.dispatch import crashes
from gameserver.dispatch.idempotency import Idempotency
from gameserver.dispatch.registry import Entry, injected
from gameserver.errors import (
    GameError,
    OutcomeUnknown,
    Overloaded,
    RateLimited,
    Timeout,
    Unauthorized,
    Unavailable,
    UnknownFunction,
)
from gameserver.logs import CORRELATION_ID
from gameserver.protocol.codec import Format
from gameserver.protocol.envelope import BadEnvelope, Request, error_reply, ok_reply, parse_request
from gameserver.storage.errors import backend_fault, is_transient, is_unavailable
from gameserver.storage.sql import Sql
from gameserver.tasks import cancel_and_wait

if TYPE_CHECKING:
    from gameserver.features.identity.tokens import Claims

log = logging.getLogger("gameserver.dispatch.dispatcher")
access_log = logging.getLogger("gameserver.access")

INTERNAL_MESSAGE = "programming error"
BUSY_MESSAGE = "the database is busy, try again"
SWEEP_PERIOD = 0.05
CANCEL_BATCH = 256  # requests cancelled at once at the end of the shutdown grace, between checks of the clock

Authenticate = Callable[[str], "Claims"]
"""Turns a token into its claims (``uid``, ...) or raises :class:`Unauthorized`; the auth feature provides it.
Synchronous and without I/O: it runs for every request that carries a token."""


def _no_auth(token: str) -> Claims:
    raise Unauthorized("no auth role is configured to check tokens")


class Dispatcher:
    """Runs requests against the function table.

    Args:
        table: the compiled handlers by ``module.function``.
        resources: the shared values injected into every handler (``db``, ``redis``, ``config``, ...).
        max_inflight: requests handled at once before new ones are answered ``overloaded``.
        node: this process's id, the prefix of correlation ids.
        log_requests: log one line per request (fn, uid, duration, outcome).
        dev: development (``server.dev``): an ``internal`` reply names the exception and where it was raised.
    """

    def __init__(
        self,
        table: Mapping[str, Entry],
        resources: Mapping[str, Any],
        *,
        max_inflight: int,
        node: str = "",
        log_requests: bool = False,
        sweep_period: float = SWEEP_PERIOD,
        dev: bool = False,
    ) -> None:
        self.table = dict(table)
        self.dev = dev
        self.resources = dict(resources)
        self.max_inflight = max_inflight
        self.stopping = False
        self.node = node
        self.log_requests = log_requests
        self.sweep_period = sweep_period
        self.authenticate: Authenticate = _no_auth
        db, config = self.resources.get("db"), self.resources.get("config")
        # Requests with an idempotency key to an idempotent function (gameserver/dispatch/idempotency.py).
        self.idempotency = (
            Idempotency(db, ttl=config.worker.idempotency_ttl) if isinstance(db, Sql) and config is not None else None
        )
        self._deadlines: dict[asyncio.Task[None], float] = {}
        self._expired: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._sweeper: asyncio.Task[None] | None = None
        # asyncio.get_running_loop() makes a getpid() system call (fork detection) each time: look it up once.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._injections: dict[str, _Injection] = {}
        self._unknown = metrics.function_stats(metrics.UNKNOWN_FN)
        for entry in self.table.values():
            entry.stats = metrics.function_stats(entry.name)

    @property
    def inflight(self) -> int:
        return len(self._deadlines)

    # The hot path: called by a driver for each decoded map, synchronously.
    def dispatch(self, message: dict[str, Any], session: Session, fmt: Format) -> None:
        start = time.perf_counter()
        try:
            request = parse_request(message)
        except BadEnvelope as exc:
            self._answer_error(session, fmt, exc.request_id, exc, self._unknown, None, start)
            return
        entry = None
        try:
            if not session.bucket.take(time.monotonic()):
                raise RateLimited("over the connection's request rate")
            entry = self.table.get(request.fn)
            if entry is None:
                raise UnknownFunction(f"no function {request.fn}")
            if len(self._deadlines) >= self.max_inflight:  # 0 once stopping: no extra check on the hot path
                raise _NotRun() if self.stopping else Overloaded()
            uid = session.uid
            claims = session.claims
            if request.token is not None:
                try:
                    claims = self.authenticate(request.token)
                    uid = claims.uid
                except Unauthorized:
                    if entry.login:
                        raise
            if entry.login and uid is None:
                raise Unauthorized("login required")
            entry.check_args(request.args)
        except GameError as exc:
            self._answer_error(session, fmt, request.id, exc, entry.stats if entry else self._unknown, None, start)
            return
        except Exception as exc:  # a check that fails (the token hook, say) is a bug, not the connection's end
            self._answer_internal(session, fmt, request.id, entry.stats if entry else self._unknown, None, start, exc)
            return
        injection = self._injections.get(entry.name)
        if injection is None or injection.entry is not entry:  # first call, or the table was replaced
            injection = self._injections[entry.name] = _Injection(entry, self.resources)
        kwargs = injection.shared.copy()
        if injection.uid:
            kwargs["uid"] = uid
        if injection.session:
            kwargs["session"] = session
        if injection.claims:
            kwargs["claims"] = claims
        if injection.args:
            kwargs["args"] = request.args
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        task = loop.create_task(self._run(entry, request, kwargs, uid, session, fmt, start))
        session.pending += 1
        if not self._deadlines:
            self._idle.clear()
            if self._sweeper is None or self._sweeper.done():
                self._sweeper = loop.create_task(self._sweep())
        self._deadlines[task] = loop.time() + entry.timeout

    async def _run(
        self,
        entry: Entry,
        request: Request,
        kwargs: dict[str, Any],
        uid: int | None,
        session: Session,
        fmt: Format,
        start: float,
    ) -> None:
        CORRELATION_ID.set((self.node, session.id, request.id))  # this task's log lines carry it
        task = asyncio.current_task(self._loop)  # with the loop given: no getpid() system call
        assert task is not None
        try:
            if request.idem is not None and entry.idempotent and self.idempotency is not None:
                scope = str(uid) if uid is not None else session.scope or f"conn:{self.node}-{session.id}"
                call = (
                    functools.partial(entry.fn, **kwargs)
                    if entry.any_args
                    else functools.partial(entry.fn, **request.args, **kwargs)
                )
                data = await self.idempotency.call(scope, entry.name, request.idem, call)
            elif entry.any_args:
                data = await entry.fn(**kwargs)
            else:
                data = await entry.fn(**request.args, **kwargs)
        except GameError as exc:
            self._answer_error(session, fmt, request.id, exc, entry.stats, uid, start)
        except asyncio.CancelledError as exc:
            if task in self._expired:
                self._expired.discard(task)
                task.uncancel()
                self._answer_error(session, fmt, request.id, Timeout(), entry.stats, uid, start)
                return
            if not task.cancelling():  # nobody cancelled this request: the handler let another's cancel escape
                self._answer_internal(session, fmt, request.id, entry.stats, uid, start, exc)
                return
            # Cancelled at the end of the shutdown grace: its effects may have been applied.
            self._answer_error(session, fmt, request.id, _StoppedMidway(), entry.stats, uid, start)
            raise
        except Exception as exc:
            if is_transient(exc):  # nothing was written; PROTOCOL.md's `unavailable`: the client may try again
                log.warning("%s: database busy (lock conflict): %s", entry.name, backend_fault(exc))
                self._answer_error(session, fmt, request.id, Unavailable(BUSY_MESSAGE), entry.stats, uid, start)
            elif is_unavailable(exc):
                log.warning("%s: backend unavailable: %s", entry.name, backend_fault(exc))  # one line
                self._answer_error(session, fmt, request.id, Unavailable(), entry.stats, uid, start)
            else:
                self._answer_internal(session, fmt, request.id, entry.stats, uid, start, exc)
        else:
            try:
                session.send(ok_reply(request.id, data), fmt)
            except (TypeError, ValueError, OverflowError, RecursionError) as exc:  # no wire form
                self._answer_internal(session, fmt, request.id, entry.stats, uid, start, exc)
            else:
                elapsed = time.perf_counter() - start
                entry.stats.observe_ok(elapsed)
                if self.log_requests:
                    self._log_request(entry.name, uid, elapsed, "ok", session, request.id)
        finally:
            session.pending -= 1
            if not session.pending:
                session.idle()
            deadlines = self._deadlines
            deadlines.pop(task, None)
            if not deadlines:
                self._idle.set()
            if self._expired:  # a handler that swallowed its deadline's cancel
                self._expired.discard(task)

    async def _sweep(self) -> None:
        """Cancel the requests past their deadline; the cancelled task answers ``timeout`` itself."""
        loop = asyncio.get_running_loop()
        while self._deadlines:
            await asyncio.sleep(self.sweep_period)
            now = loop.time()
            for task, deadline in list(self._deadlines.items()):
                if deadline <= now and task not in self._expired and not task.done():
                    self._expired.add(task)
                    task.cancel()

    def correlation_id(self, session: Session, request_id: int | None) -> str:
        return f"{self.node}-{session.id}-{request_id}"

    def _log_request(
        self, fn: str, uid: int | None, seconds: float, outcome: str, session: Session, request_id: int | None
    ) -> None:
        """The per-request line (``log.requests``); JSON logs get its values as fields."""
        ms = round(seconds * 1000, 2)
        fields = {"cid": self.correlation_id(session, request_id), "fn": fn, "uid": uid, "ms": ms, "outcome": outcome}
        access_log.info("fn=%s uid=%s ms=%.2f outcome=%s", fn, uid, ms, outcome, extra=fields)

    def replace_table(self, table: Mapping[str, Entry]) -> None:
        """Swap in a new function table (hot reload): requests from now on use it, those in flight finish on the
        entries they started with."""
        for entry in table.values():
            entry.stats = metrics.function_stats(entry.name)
        self.table = dict(table)

    def _answer_error(
        self,
        session: Session,
        fmt: Format,
        request_id: int | None,
        exc: GameError,
        stats: metrics.FunctionStats,
        uid: int | None,
        start: float,
        extra: dict[str, Any] | None = None,
    ) -> None:
        stats.observe_error(exc.code)
        if self.log_requests:
            self._log_request(stats.fn, uid, time.perf_counter() - start, exc.code, session, request_id)
        try:
            session.send(error_reply(request_id, exc.code, exc.message, extra), fmt)
        except (TypeError, ValueError):
            log.exception("cannot encode the error reply of %s", stats.fn)

    def _answer_internal(
        self,
        session: Session,
        fmt: Format,
        request_id: int | None,
        stats: metrics.FunctionStats,
        uid: int | None,
        start: float,
        exc: BaseException,
    ) -> None:
        cid = self.correlation_id(session, request_id)
        log.error(
            "internal error in %s (correlation id %s, uid %s)", stats.fn, cid, uid, exc_info=exc, extra={"cid": cid}
        )
        reply, extra = _Internal(), dict[str, Any](cid=cid)
        if self.dev:
            reply = _Internal(f"{INTERNAL_MESSAGE}: {crashes.summary(exc)}")
            where = crashes.location(exc)
            exception: dict[str, Any] = {"type": type(exc).__name__, "message": crashes.message(exc)}
            if where is not None:
                exception.update(file=where.file, line=where.line)
            extra["exception"] = exception
        self._answer_error(session, fmt, request_id, reply, stats, uid, start, extra)

    def stop_taking(self) -> None:
        """The shutdown began: answer every request from now on ``unavailable`` without running it."""
        self.stopping = True
        self.max_inflight = 0

    async def drain(self, timeout: float) -> bool:
        """Wait until no request is in flight, at most ``timeout`` seconds; True if none is left."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
            return True
        except TimeoutError:
            return False

    async def cancel_all(self, timeout: float) -> None:
        """Cancel every request in flight; each answers ``outcome_unknown`` (it may have been applied) as it ends.

        Returns within ``timeout`` seconds: the requests are cancelled a batch at a time (thousands unwinding at
        once would hold the loop past any deadline), and those not reached in time, or stuck in a backend's
        thread (SQLite's busy wait), are left, unanswered: their connections close, which says as much.
        """
        # A task cancelled before its first step never runs _run, so it could neither answer nor leave
        # _deadlines: let the requests dispatched in this loop iteration start first.
        await asyncio.sleep(0)
        tasks = list(self._deadlines)
        try:
            async with asyncio.timeout(timeout):
                for start in range(0, len(tasks), CANCEL_BATCH):
                    # Each answers as it ends; a cancel lost in redis-py is repeated.
                    await cancel_and_wait(tasks[start : start + CANCEL_BATCH])
        except TimeoutError:
            left = sum(not task.done() for task in tasks)
            log.warning("shutdown: %d requests still running at the end of the grace are left unanswered", left)
        for task in tasks:  # dispatched during the sleep above and cancelled unstarted
            self._deadlines.pop(task, None)
        if not self._deadlines:
            self._idle.set()
        if self._sweeper is not None:
            self._sweeper.cancel()


class _Injection:
    """The keyword arguments of one handler besides its client args, prepared on its first call: the shared
    resources (and its logger) that it names, or all of them for a ``**kwargs`` handler, and which of the
    per-request values (``uid``, ``session``, ``args``, ``claims``) it takes. A request then copies a small dict
    instead of building the whole bag and picking from it."""

    __slots__ = ("entry", "shared", "uid", "session", "args", "claims")

    def __init__(self, entry: Entry, resources: Mapping[str, Any]) -> None:
        self.entry = entry
        self.shared = injected(entry, resources, _PER_REQUEST)
        if entry.inject is None:
            self.uid = self.session = self.args = self.claims = True
        else:
            self.uid = "uid" in entry.inject
            self.session = "session" in entry.inject
            self.args = "args" in entry.inject
            self.claims = "claims" in entry.inject


_PER_REQUEST = frozenset({"uid", "session", "args", "claims"})


class _Internal(GameError):
    code = "internal"
    message = INTERNAL_MESSAGE


class _NotRun(GameError):
    code = "unavailable"
    message = "the server is shutting down; the request was not run"


class _StoppedMidway(OutcomeUnknown):
    message = "the server stopped before the request finished; it may have been applied"
