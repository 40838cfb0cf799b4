"""Idempotent requests: a repeat with the same key and caller gets the stored reply, the handler runs once.

A request may carry an idempotency key (PROTOCOL.md extension, docs/PROTOCOL.md "Idempotency keys"); for a
function registered with ``handler(fn, idempotent=True)`` the dispatcher runs it through :meth:`Idempotency.call`:

1. A reply stored under (scope, fn, key) is answered as it is, without running the handler.
2. Otherwise the handler runs in one shared write transaction (:meth:`gameserver.storage.sql.Sql.shared`) that
   every ``db.transaction()``, ``db.run()`` and read of the handler joins. Its first statement inserts the
   (scope, fn, key) row; the reply is written into that row just before the commit. The handler's writes and the
   row commit together or not at all.
3. A concurrent twin (same key, another connection or process) blocks on that row's unique key until the first
   commits, then fails on it: its transaction rolls back, and it answers the first one's stored reply.
4. A transaction that loses a lock conflict (deadlock, SQLite busy) is run again whole, handler included, up to
   ``db.retries`` times. A commit cut off by a lost connection is answered ``outcome_unknown``: sent again with
   the same key, the request gets the stored reply if the commit happened, and runs if it did not.

The scope is the caller's uid, or for a function without login the connection (``conn:<node>-<session>``, so a
key does not outlive its connection there). Only successes are stored: a handler that raises rolled back its
writes, and a repeat runs it again. Effects outside the database (a Maildir file, Redis, pushes) are not in the
transaction: a handler makes them idempotent itself, with :func:`current_key` (docs/modules-reference.md, "Idempotent
writes"). Rows older than ``worker.idempotency_ttl`` are deleted by a sweep that the requests themselves start, at
most once per ``sweep_period`` per process.

The scale-out redelivery of a request (issue 13) is the same call with the message id as the key.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import msgpack
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gameserver.errors import OutcomeUnknown
from gameserver.storage.errors import is_transient, is_unavailable
from gameserver.storage.sql import Sql, metadata

BLOB = sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql")  # up to 16 MiB there, not BLOB's 64 KiB

log = logging.getLogger("gameserver.dispatch.idempotency")

KEY_MAX = 128
"""Longest key a client may send (characters)."""
SCOPE_MAX = 64
FN_MAX = 128
DEFAULT_TTL = 86400.0
_JITTER = (0.5, 1.5)

idempotency = sa.Table(
    "idempotency",
    metadata,
    sa.Column("scope", sa.String(SCOPE_MAX), primary_key=True),
    sa.Column("fn", sa.String(FN_MAX), primary_key=True),
    sa.Column("key", sa.String(KEY_MAX), primary_key=True),
    sa.Column("reply", BLOB, nullable=True),  # msgpack of the reply's data
    sa.Column("created_at", sa.BigInteger, nullable=False),  # ms since the epoch
    sa.Index("ix_idempotency_created_at", "created_at"),
)
"""Created by revision core_0003. The row is inserted by the request's first statement, its reply set at commit."""


@dataclass(frozen=True, slots=True)
class Call:
    """The idempotent call running in this task: who, which function, which key."""

    scope: str
    fn: str
    key: str

    def tag(self, size: int = 24) -> str:
        """A short stable name for this call ([0-9a-f]), for a side effect that must happen once per key (a mail id,
        a Redis key): the same on every repeat, in every process."""
        return hashlib.sha256(f"{self.scope}\x00{self.fn}\x00{self.key}".encode()).hexdigest()[:size]


_CURRENT: ContextVar[Call | None] = ContextVar("gameserver_idempotent_call", default=None)


def current_key() -> Call | None:
    """The idempotent call this handler runs under, or None (no key, or the function is not idempotent)."""
    return _CURRENT.get()


class CommitLost(OutcomeUnknown):
    """The connection was lost while the transaction committed: it may or may not have been applied. The client
    sends the request again with the same key, and gets the stored reply if it was (docs/PROTOCOL.md)."""

    message = "the database went away while committing; it may have been applied: send it again with the same key"


class _Taken(Exception):
    """The (scope, fn, key) row exists: a twin committed first."""


_MISSING: Any = object()


class Idempotency:
    """Runs handlers once per (scope, fn, key) over ``db``.

    Args:
        db: the database holding the ``idempotency`` table.
        ttl: seconds a stored reply is kept (``worker.idempotency_ttl``).
        sweep_period: seconds between two sweeps of expired rows by this process.
    """

    def __init__(self, db: Sql, *, ttl: float = DEFAULT_TTL, sweep_period: float | None = None) -> None:
        self.db = db
        self.ttl = ttl
        self.sweep_period = sweep_period if sweep_period is not None else min(ttl / 4, 3600.0)
        self._last_sweep = time.monotonic()
        self._sweeps: set[asyncio.Task[int]] = set()

    async def call(self, scope: str, fn: str, key: str, run: Callable[[], Awaitable[Any]]) -> Any:
        """``await run()`` once for (scope, fn, key) and return its result, or the result stored by an earlier run.

        Raises:
            Whatever ``run`` raises (nothing of it is stored: a repeat runs again).
            sqlalchemy.exc.DBAPIError: the database is down, or the transaction kept losing lock conflicts.
        """
        scope, fn, key = _fit(scope, SCOPE_MAX), _fit(fn, FN_MAX), _fit(key, KEY_MAX)
        stored = await self.stored(scope, fn, key)
        if stored is not _MISSING:
            return stored
        call = Call(scope, fn, key)
        retries = self.db.config.retries
        for attempt in range(retries + 1):
            try:
                result = await self._once(call, run)
            except _Taken:
                stored = await self.stored(scope, fn, key)
                if stored is not _MISSING:
                    return stored
                continue  # the row went between our insert and our read (expired): run afresh
            except sa.exc.DBAPIError as exc:
                if attempt == retries or not is_transient(exc):
                    raise
                await asyncio.sleep(self.db.config.retry_delay * 2**attempt * random.uniform(*_JITTER))
                continue
            self._maybe_sweep()
            return result
        raise sa.exc.TimeoutError(f"{fn}: idempotency key {key!r} kept changing hands")

    async def _once(self, call: Call, run: Callable[[], Awaitable[Any]]) -> Any:
        async def claim(tx: AsyncConnection) -> None:
            try:
                # values() as a dict: the column "fn" is the name of values()' own first parameter
                row = {"scope": call.scope, "fn": call.fn, "key": call.key, "reply": None, "created_at": _now_ms()}
                await tx.execute(idempotency.insert().values(row))
            except IntegrityError:
                raise _Taken() from None

        token = _CURRENT.set(call)
        try:
            async with self.db.shared(claim) as shared:
                result = await run()
                reply = msgpack.packb(result, use_bin_type=True)
                tx = await shared.connection()  # opens it now if the handler wrote nothing to the database
                where = sa.and_(
                    idempotency.c.scope == call.scope, idempotency.c.fn == call.fn, idempotency.c.key == call.key
                )
                await tx.execute(idempotency.update().where(where).values({"reply": reply}))
                try:
                    await shared.commit()
                except Exception as exc:
                    if is_unavailable(exc) and not is_transient(exc):  # gone while committing: done or not?
                        raise CommitLost() from exc
                    raise
        finally:
            _CURRENT.reset(token)
        return result

    async def stored(self, scope: str, fn: str, key: str) -> Any:
        """The stored result for (scope, fn, key), or ``_MISSING``."""
        query = sa.select(idempotency.c.reply).where(
            idempotency.c.scope == scope, idempotency.c.fn == fn, idempotency.c.key == key
        )
        row = await self.db.fetch_one(query)
        if row is None or row.reply is None:
            return _MISSING
        return msgpack.unpackb(row.reply, raw=False)

    async def sweep(self) -> int:
        """Delete the rows older than ``ttl``; returns how many."""
        cutoff = _now_ms() - int(self.ttl * 1000)
        return await self.db.execute(idempotency.delete().where(idempotency.c.created_at < cutoff))

    def _maybe_sweep(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep < self.sweep_period:
            return
        self._last_sweep = now
        task = asyncio.get_running_loop().create_task(self._sweep_logged())
        self._sweeps.add(task)
        task.add_done_callback(self._sweeps.discard)

    async def _sweep_logged(self) -> int:
        try:
            deleted = await self.sweep()
        except Exception as exc:  # the next sweep tries again; requests are not affected
            log.warning("idempotency sweep failed: %s: %s", type(exc).__name__, exc)
            return 0
        if deleted:
            log.info("idempotency: %d expired keys deleted", deleted)
        return deleted


def _fit(value: str, size: int) -> str:
    """``value``, or for one too long for its column (a long host name in a connection scope) a digest of it."""
    if len(value) <= size:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[: size - 7]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
