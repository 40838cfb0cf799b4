"""The SQL database: one interface over embedded SQLite (default) and MariaDB/MySQL (asyncmy).

Built on SQLAlchemy Core's async engines rather than a facade of our own: one dialect-neutral way to
declare tables and write queries that compile to both SQLite and MySQL, connection pools with pre-ping
(a restarted MariaDB is reconnected on the next query, without restarting the game server), and
transactions as context managers. Modules declare tables on :data:`metadata` and create or change them with
Alembic revisions (:mod:`gameserver.storage.migrate`), applied by ``gameserver migrate`` and by an embedded
server's start-up, or on first use if the database is down at start-up. See ``docs/storage.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import random
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import Executable

from gameserver import metrics
from gameserver.config import DbConfig
from gameserver.errors import ConfigError, OutcomeUnknown, Unavailable
from gameserver.storage.errors import is_connection_lost, is_transient, is_unavailable

log = logging.getLogger("gameserver.sql")

metadata = sa.MetaData()
"""Where modules declare their tables: ``sa.Table("scores", metadata, ...)``."""

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""The column type of an auto-increment primary key on both backends (SQLite only auto-increments an
``INTEGER PRIMARY KEY``; MySQL ids outgrow ``INT``)."""

# MySQL tables get these unless the table names its own charset or collation: utf8mb4 stores every
# character (emoji included), and a binary collation compares strings as SQLite does (case-sensitive).
MYSQL_TABLE_DEFAULTS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}


@event.listens_for(sa.Table, "before_create")
def _mysql_table_defaults(table: sa.Table, connection: sa.Connection, **_: Any) -> None:
    # Every CREATE TABLE: create_all and Alembic's op.create_table (which fires this event too).
    if connection.dialect.name == "mysql" and not {"mysql_charset", "mysql_collate"} & set(table.dialect_kwargs):
        for key, value in MYSQL_TABLE_DEFAULTS.items():
            table.dialect_kwargs.setdefault(key, value)


MYSQL_PORT = 3306
COMMIT_LOST = "the database connection was lost while committing; the request may have been applied"


_WRITE = "gameserver_write"  # execution option: this connection is for a write transaction

# Set while a db.run() body runs: a transaction opened inside it would commit apart from the retried body (and on
# SQLite wait for the body's own write lock).
_IN_BODY: ContextVar[bool] = ContextVar("gameserver_sql_in_body", default=False)
# The request's shared transaction (Sql.shared), joined by every transaction and read of the task that set it.
_SHARED: ContextVar[SharedTransaction | None] = ContextVar("gameserver_sql_shared", default=None)
_JITTER = (0.5, 1.5)  # each retry waits its delay times a random factor in this range: the losers spread out

P = ParamSpec("P")
T = TypeVar("T")


class Sql:
    """The ``db`` resource handed to handlers.

    ``await db.run(body, *args)`` calls ``body(tx, *args)`` in a transaction, all or nothing, and runs it
    again when it loses a lock conflict (a deadlock on MariaDB); ``async with db.transaction() as tx:`` is the
    same transaction without the retries. An exception inside either (a ``GameError`` included) rolls
    everything back. On SQLite the write lock is taken at BEGIN, so concurrent writers queue (up to
    ``db.query_timeout``) instead of failing with "database is locked"; on MariaDB, lock the rows you read
    before writing them (``select(...).with_for_update()``) or write relative updates (``score = score + 1``).

    A database that is down raises errors that the dispatcher answers ``unavailable``
    (:func:`gameserver.storage.errors.is_unavailable`); the pool reconnects once it is back.
    """

    def __init__(self, engine: AsyncEngine, config: DbConfig | None = None) -> None:
        self.engine = engine
        self.config = config or DbConfig()
        self.dialect = engine.dialect.name
        self._writer = engine.execution_options(**{_WRITE: True})
        self._pending: Callable[[Sql], Awaitable[None]] | None = None  # start-up's schema step, once the db answers
        self._pending_lock = asyncio.Lock()

    @classmethod
    def open(cls, config: DbConfig, data_dir: Path) -> Sql:
        """An engine for ``db.url`` (SQLite in ``data_dir/game.db`` when empty). Connects lazily."""
        url = sa.make_url(config.url or f"sqlite+aiosqlite:///{data_dir / 'game.db'}")
        if url.get_backend_name() == "sqlite":
            engine = create_async_engine(
                url,
                echo=config.echo,
                # The driver's busy timeout: how long a writer waits for another's lock.
                connect_args={"timeout": config.query_timeout},
                **({} if url.database in (None, "", ":memory:") else _pool_args(config, config.query_timeout)),
            )
            _sqlite_transactions(engine)
        elif url.get_backend_name() == "mysql":
            connect_args: dict[str, Any] = {
                "connect_timeout": config.connect_timeout,
                "read_timeout": config.query_timeout,  # a query unanswered this long drops its connection
                # A row lock waited for this long fails with 1205, which db.run() retries, instead of running into
                # read_timeout, which drops the connection and cannot be retried (the commit may have happened).
                "init_command": f"SET SESSION innodb_lock_wait_timeout = {lock_wait_timeout(config.query_timeout)}",
            }
            if "charset" not in url.query:
                connect_args["charset"] = "utf8mb4"
            engine = create_async_engine(
                url,
                echo=config.echo,
                pool_pre_ping=True,  # a connection that died while idle is replaced at checkout
                pool_recycle=3600,  # below the server's wait_timeout (8 h by default)
                async_creator=_mysql_connector(url, connect_args, config.connect_timeout),
                **_pool_args(config, config.connect_timeout),
            )
        else:
            raise ConfigError(f"db.url: expected sqlite+aiosqlite:// or mysql+asyncmy://, got {url.drivername}://")
        quiet_pool_faults(engine)
        return cls(engine, config)

    @property
    def where(self) -> str:
        """Which database this is, without credentials: ``mysql 127.0.0.1:3306/game``, ``sqlite /srv/game.db``."""
        url = self.engine.url
        if self.dialect == "sqlite":
            return f"sqlite {url.database or ':memory:'}"
        return f"{self.dialect} {url.host}:{url.port or MYSQL_PORT}/{url.database or ''}"

    async def run(
        self, body: Callable[Concatenate[AsyncConnection, P], Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Call ``body(tx, *args, **kwargs)`` in a write transaction and return what it returns; if the database
        gives up on the transaction over another's locks (:func:`~gameserver.storage.errors.is_transient`: a
        deadlock, a lock wait timeout, SQLite busy), roll back and call it again, up to ``db.retries`` times,
        waiting ``db.retry_delay`` (doubled each time, jittered) in between.

        ``body`` may run more than once, each time on a fresh transaction: everything it does must go through
        ``tx``. Pushes, mail, Redis, HTTP calls and changes to outside state belong after ``run`` returns,
        when the transaction is committed; return what they need.

        Raises:
            Whatever ``body`` raises (a ``GameError`` is not retried). After the last attempt, the lock
            conflict's ``DBAPIError``, which the dispatcher answers ``unavailable``.
            RuntimeError: called inside another ``run`` body (use that body's ``tx``).
            TypeError: ``body`` is not a function returning an awaitable (``db.run(fn, x)``, not ``db.run(fn(x))``).
        """
        if not callable(body):
            if inspect.iscoroutine(body):
                body.close()  # no "never awaited" warning on top of this error
            raise TypeError(f"db.run() takes the function and its arguments, db.run(fn, *args), not {body!r}")
        shared = _SHARED.get()
        retries = 0 if shared is not None and shared.sql is self else self.config.retries
        for attempt in range(retries + 1):
            try:
                async with self.transaction() as tx:
                    entered = _IN_BODY.set(True)
                    try:
                        result = body(tx, *args, **kwargs)
                        if not inspect.isawaitable(result):
                            raise TypeError(f"db.run(): {body!r} returned {type(result).__name__}, not an awaitable")
                        return await result
                    finally:
                        _IN_BODY.reset(entered)
            except sa.exc.DBAPIError as exc:
                if attempt == retries or not is_transient(exc):
                    raise
                delay = self.config.retry_delay * 2**attempt * random.uniform(*_JITTER)
                log.debug("transaction retried in %.3fs (%d of %d): %s", delay, attempt + 1, retries, short_error(exc))
                metrics.DB_RETRIES.inc()
                await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction: committed when the block ends, rolled back if it raises.
        Not retried: a deadlock raises (answered ``unavailable``); :meth:`run` retries.

        Raises:
            RuntimeError: inside a :meth:`run` body (use that body's ``tx``).
            OutcomeUnknown: the connection was lost while committing: the database may have committed or not
                (a crash between its commit and its answer), so ``unavailable`` ("nothing was done") would lie.
        """
        if _IN_BODY.get():
            raise RuntimeError("a transaction inside a db.run() body: use the body's tx")
        shared = _SHARED.get()
        if shared is not None and shared.sql is self:
            conn = await shared.connection()
            async with conn.begin_nested():  # a savepoint: an exception undoes this block, the request decides the rest
                yield conn
            return
        if self._pending is not None:
            await self._create_pending()
        async with self._writer.connect() as conn:
            await conn.begin()
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(Exception):  # the body's error is the one to report; a dead connection
                    await conn.rollback()  # cannot roll back, and the pool drops it
                raise
            try:
                await conn.commit()
            except sa.exc.DBAPIError as exc:
                if is_unavailable(exc) and not is_transient(exc):
                    log.warning("connection lost while committing, the outcome is unknown: %s", short_error(exc))
                    raise OutcomeUnknown(COMMIT_LOST) from exc
                raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection to read with, outside a write transaction (inside a request's shared transaction, that
        transaction's connection: reads see its writes)::

            async with db.read() as conn:
                account = await account_by_uid(conn, uid)
        """
        async with self._reader() as conn:
            yield conn

    @asynccontextmanager
    async def shared(self, on_open: Callable[[AsyncConnection], Awaitable[None]]) -> AsyncIterator[SharedTransaction]:
        """One write transaction that every :meth:`transaction`, :meth:`run` and read of this task joins until the
        block ends (the dispatcher's idempotent requests, :mod:`gameserver.dispatch.idempotency`). It opens on first
        use, calling ``on_open(conn)`` first, commits when the block ends and rolls back if it raises. Inside it,
        :meth:`transaction` is a savepoint and :meth:`run` does not retry: the owner of the block retries it whole.
        """
        shared = SharedTransaction(self, on_open)
        token = _SHARED.set(shared)
        try:
            yield shared
            await shared.commit()
        finally:
            _SHARED.reset(token)
            await shared.close()

    async def execute(self, statement: Executable, params: Mapping[str, Any] | None = None) -> int:
        """Run one statement in its own transaction (retried as :meth:`run` does); returns the rows it touched."""
        return await self.run(_execute, statement, params)

    async def fetch_one(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Row[Any] | None:
        """The first row, or None."""
        async with self._reader() as conn:
            return (await conn.execute(statement, params)).first()

    async def fetch_all(self, statement: Executable, params: Mapping[str, Any] | None = None) -> list[Row[Any]]:
        async with self._reader() as conn:
            return list((await conn.execute(statement, params)).all())

    async def fetch_value(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row, or None."""
        async with self._reader() as conn:
            return (await conn.execute(statement, params)).scalar()

    @asynccontextmanager
    async def _reader(self) -> AsyncIterator[AsyncConnection]:
        shared = _SHARED.get()
        if shared is not None and shared.sql is self:
            yield await shared.connection()
            return
        if self._pending is not None:
            await self._create_pending()
        async with self.engine.connect() as conn:
            yield conn

    async def create_tables(self, tables: sa.MetaData) -> None:
        """Create the tables of ``tables`` that do not exist yet, without migrations (scratch tables of a test or a
        tool; the server's schema is migrated: :mod:`gameserver.storage.migrate`).

        Raises:
            sqlalchemy.exc.DBAPIError: the database refused or is unreachable.
        """
        await self.run_schema(tables.create_all)

    async def run_schema(self, change: Callable[[sa.Connection], T]) -> T:
        """Run ``change(connection)`` (synchronous SQLAlchemy: Alembic, ``create_all``) in one transaction while no
        other process changes this database's schema: SQLite's write lock (BEGIN IMMEDIATE; its DDL is
        transactional), MariaDB's named lock ``GET_LOCK`` (its DDL commits as it goes).

        Raises:
            sqlalchemy.exc.DBAPIError: the database refused or is unreachable.
            TimeoutError: another process held the lock for ``db.query_timeout``.
        """
        async with self._writer.begin() as conn:
            if self.dialect == "mysql":
                name = f"gameserver_schema.{conn.engine.url.database}"
                timeout = math.ceil(self.config.query_timeout)
                got = await conn.scalar(sa.text("SELECT GET_LOCK(:name, :timeout)"), {"name": name, "timeout": timeout})
                if got != 1:
                    raise TimeoutError(f"another process is changing the schema (lock {name} held for {timeout}s)")
                try:
                    return await conn.run_sync(change)
                finally:
                    await conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": name})
            return await conn.run_sync(change)

    async def start(self, prepare: Callable[[Sql], Awaitable[None]]) -> None:
        """Prepare the schema at server start-up: ``prepare(self)``, the app's
        :meth:`gameserver.storage.migrate.Schema.prepare` (upgrade on an embedded server, check on MariaDB).

        A database that is unreachable does not stop the server: ``prepare`` runs on the first query after it
        answers, and until then queries (and ``/healthz``) fail as ``unavailable``. Any other refusal (wrong
        password, unknown database, bad DDL, a schema behind the code) will not heal by itself.

        Raises:
            ConfigError: the database answered but refused, with its message.
        """
        try:
            await prepare(self)
        except ConfigError:
            raise
        except Exception as exc:
            if not is_unavailable(exc):
                raise ConfigError(f"db.url: cannot prepare the schema: {short_error(exc)}") from exc
            log.warning(
                "database unreachable at start-up, the schema is prepared when it answers: %s", short_error(exc)
            )
            self._pending = prepare

    async def _create_pending(self) -> None:
        async with self._pending_lock:
            prepare = self._pending
            if prepare is not None:
                try:
                    await prepare(self)  # through run_schema, which does not wait for this
                except ConfigError as exc:  # too late to refuse to start: say it loudly, once
                    log.error("database reachable again, but: %s", exc)
                else:
                    log.info("database reachable again: schema prepared")
                self._pending = None

    async def ping(self) -> None:
        """Raise unless the database answers (and the tables deferred at start-up could be created).

        Raises:
            Unavailable: the database cannot be reached; the message says why in one line (``/healthz``).
        """
        try:
            async with self._reader() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception as exc:
            if is_unavailable(exc):
                raise Unavailable(f"unreachable: {short_error(exc)}") from exc
            raise

    async def close(self) -> None:
        await self.engine.dispose()


class SharedTransaction:
    """The transaction of :meth:`Sql.shared`, opened on first use."""

    def __init__(self, sql: Sql, on_open: Callable[[AsyncConnection], Awaitable[None]]) -> None:
        self.sql = sql
        self.on_open = on_open
        self._conn: AsyncConnection | None = None
        self._lock = asyncio.Lock()

    @property
    def opened(self) -> bool:
        return self._conn is not None

    async def connection(self) -> AsyncConnection:
        """The transaction's connection, beginning it (and running ``on_open``) on the first call."""
        if self._conn is not None:
            return self._conn
        async with self._lock:
            if self._conn is None:
                sql = self.sql
                if sql._pending is not None:
                    await sql._create_pending()
                conn = await sql._writer.connect()
                try:
                    await conn.begin()
                    await self.on_open(conn)
                except BaseException:
                    await _discard(conn)
                    raise
                self._conn = conn
        return self._conn

    async def commit(self) -> None:
        if self._conn is not None:
            await self._conn.commit()

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await _discard(conn)


async def _discard(conn: AsyncConnection) -> None:
    """Roll back what is left of ``conn``'s transaction and give it back to the pool, even while cancelled."""
    await asyncio.shield(conn.close())


class PoolFaults(logging.Filter):
    """SQLAlchemy's pool logs a traceback at ERROR when it cannot reset or close a connection whose server went away
    (a MariaDB crash: the rollback on return fails). The pool handles it (the connection is invalidated, the next
    checkout reconnects), and the request that held it was answered ``unavailable``: one WARNING line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if record.levelno >= logging.ERROR and exc is not None and is_connection_lost(exc):
            record.msg = f"{record.getMessage()} (the connection is dropped): {short_error(exc)}"
            record.args = None
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        return True


_POOL_FAULTS = PoolFaults()


def quiet_pool_faults(engine: AsyncEngine) -> None:
    """Install :class:`PoolFaults` on the logger of ``engine``'s pool (one per pool class)."""
    pool = type(engine.pool)
    logging.getLogger(f"{pool.__module__}.{pool.__name__}").addFilter(_POOL_FAULTS)


def lock_wait_timeout(query_timeout: float) -> int:
    """MariaDB's ``innodb_lock_wait_timeout`` for ``db.query_timeout``: whole seconds (at least 1), half of it."""
    return max(1, math.floor(query_timeout / 2))


def _mysql_connector(url: sa.URL, connect_args: dict[str, Any], timeout: float) -> Callable[[], Awaitable[Any]]:
    """asyncmy's ``connect_timeout`` bounds the TCP connect only; this bounds the handshake too, so that a
    server that accepts and then hangs is ``unavailable`` after ``db.connect_timeout``, not ``query_timeout``."""
    import asyncmy

    cargs, cparams = url.get_dialect()().create_connect_args(url)
    cparams.update(connect_args)

    async def connect() -> Any:
        try:
            return await asyncio.wait_for(asyncmy.connect(*cargs, **cparams), timeout)
        except TimeoutError:
            where = f"{url.host}:{url.port or 3306}"
            raise asyncmy.errors.OperationalError(
                2003, f"Can't connect to MySQL server on {where} (timed out)"
            ) from None

    return connect


async def _execute(tx: AsyncConnection, statement: Executable, params: Mapping[str, Any] | None) -> int:
    return int((await tx.execute(statement, params)).rowcount)


def _pool_args(config: DbConfig, timeout: float) -> dict[str, Any]:
    # pool_timeout: how long a request waits for a free connection before failing as unavailable.
    return {"pool_size": config.pool_size, "max_overflow": config.pool_size, "pool_timeout": timeout}


def short_error(exc: BaseException) -> str:
    """One line naming the driver's error, without SQLAlchemy's statement and background link."""
    orig = getattr(exc, "orig", None) or exc
    return f"{type(orig).__name__}: {orig}".splitlines()[0][:300]


def _sqlite_transactions(engine: AsyncEngine) -> None:
    """SQLAlchemy's recipe for real SQLite transactions with aiosqlite: stop the driver's implicit BEGIN,
    emit our own. Write transactions take the write lock up front (BEGIN IMMEDIATE): a deferred
    transaction that reads and then writes fails with "database is locked" at once when another writer
    holds the lock, instead of waiting for it (the busy timeout does not apply to a lock upgrade)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer, nor it them
        except sqlite3.OperationalError:
            # Another connection is switching a new file to WAL right now (two processes starting at once):
            # WAL is a property of the file, so this connection uses it too once that switch is done.
            log.debug("sqlite: journal_mode switch left to a concurrent connection")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: a crash loses nothing, a power cut the last commits
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")
