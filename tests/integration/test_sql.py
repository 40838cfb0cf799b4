"""gameserver/storage/sql.py over SQLite and MariaDB: the same tests, the same answers."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gameserver.errors import ConfigError, GameError, OutcomeUnknown
from gameserver.storage.errors import error_code, is_transient, is_unavailable
from gameserver.storage.migrate import Schema
from gameserver.storage.sql import ID, Sql
from tests.integration.conftest import db_config

# Tables of these tests only: a MetaData of their own, so that apps started by other tests never create them.
meta = sa.MetaData()
players = sa.Table(
    "t_players",
    meta,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("coins", sa.Integer, nullable=False, default=0),
)
counters = sa.Table(
    "t_counters",
    meta,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
)


@pytest.fixture
async def tables(db: Sql) -> Sql:
    await db.create_tables(meta)
    return db


async def names(db: Sql) -> list[str]:
    return [row.name for row in await db.fetch_all(sa.select(players.c.name).order_by(players.c.id))]


async def test_execute_and_fetch(tables: Sql) -> None:
    db = tables
    assert await db.execute(players.insert(), [{"name": "ann"}, {"name": "bob"}]) == 2  # type: ignore[arg-type]
    assert await db.execute(players.update().where(players.c.name == "bob").values(coins=5)) == 1
    row = await db.fetch_one(sa.select(players).where(players.c.name == "bob"))
    assert row is not None and (row.id, row.name, row.coins) == (2, "bob", 5)
    assert await db.fetch_one(sa.select(players).where(players.c.name == "nobody")) is None
    assert await db.fetch_value(sa.select(sa.func.count()).select_from(players)) == 2
    assert await db.fetch_value(sa.select(players.c.id).where(players.c.name == "nobody")) is None
    assert await names(db) == ["ann", "bob"]


async def test_autoincrement_ids(tables: Sql) -> None:
    async with tables.transaction() as tx:
        first = (await tx.execute(players.insert().values(name="a"))).inserted_primary_key[0]
        second = (await tx.execute(players.insert().values(name="b"))).inserted_primary_key[0]
    assert (first, second) == (1, 2)


async def test_transaction_commits_at_the_end(tables: Sql) -> None:
    async with tables.transaction() as tx:
        await tx.execute(players.insert().values(name="ann"))
        await tx.execute(players.insert().values(name="bob"))
    assert await names(tables) == ["ann", "bob"]


class Refused(GameError):
    code = "refused"


async def test_exception_in_transaction_rolls_everything_back(tables: Sql) -> None:
    await tables.execute(players.insert().values(name="ann", coins=10))
    with pytest.raises(Refused):
        async with tables.transaction() as tx:
            await tx.execute(players.update().values(coins=0))
            await tx.execute(players.insert().values(name="bob"))
            raise Refused()
    with pytest.raises(sa.exc.IntegrityError):
        async with tables.transaction() as tx:
            await tx.execute(players.insert().values(name="cid"))
            await tx.execute(players.insert().values(name="ann"))  # unique name: fails mid-transaction
    assert await names(tables) == ["ann"]
    assert await tables.fetch_value(sa.select(players.c.coins)) == 10


async def test_cancelled_transaction_rolls_back_and_frees_its_connection(tables: Sql) -> None:
    """A handler past its deadline is cancelled inside its transaction: nothing is committed, no lock is
    left behind, and the pool keeps working."""
    db = tables
    await db.execute(counters.insert().values(name="c", n=0))
    for _ in range(3):  # more than once: a leaked connection or lock would show on the next round
        inside = asyncio.Event()

        async def stuck() -> None:
            async with db.transaction() as tx:
                await tx.execute(counters.update().values(n=99))
                inside.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(stuck())
        await inside.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await db.fetch_value(sa.select(counters.c.n)) == 0
    assert await db.execute(counters.update().values(n=counters.c.n + 1)) == 1
    assert await db.fetch_value(sa.select(counters.c.n)) == 1


async def test_concurrent_writers_queue_instead_of_failing(tables: Sql) -> None:
    """Read-modify-write in transactions from many tasks at once: none fails ("database is locked" on
    SQLite without BEGIN IMMEDIATE), none is lost (a lost update on MariaDB without FOR UPDATE)."""
    db = tables
    await db.execute(counters.insert().values(name="c", n=0))
    writers = 20

    async def increment() -> None:
        async with db.transaction() as tx:
            query = sa.select(counters.c.n).where(counters.c.name == "c").with_for_update()
            n = (await tx.execute(query)).scalar_one()
            await asyncio.sleep(0)  # let the other writers run between the read and the write
            await tx.execute(counters.update().where(counters.c.name == "c").values(n=n + 1))

    await asyncio.gather(*(increment() for _ in range(writers)))
    assert await db.fetch_value(sa.select(counters.c.n)) == writers


async def test_reads_do_not_wait_for_a_writer(tables: Sql) -> None:
    db = tables
    await db.execute(counters.insert().values(name="c", n=1))
    async with db.transaction() as tx:
        await tx.execute(counters.update().values(n=2))
        # Another connection reads the last committed value while the write lock is held.
        assert await db.fetch_value(sa.select(counters.c.n)) == 1
    assert await db.fetch_value(sa.select(counters.c.n)) == 2


async def test_text_round_trips_and_compares_the_same_on_both(tables: Sql) -> None:
    """utf8mb4 on MariaDB (emoji need 4 bytes), and binary comparison as on SQLite."""
    names_in = ["🎮 player", "玩家一号", "Ñandú", "ann", "ANN"]
    await tables.execute(players.insert(), [{"name": name} for name in names_in])  # type: ignore[arg-type]
    assert await names(tables) == names_in
    found = await tables.fetch_all(sa.select(players.c.name).where(players.c.name == "ann"))
    assert [row.name for row in found] == ["ann"]
    emoji = await tables.fetch_value(sa.select(players.c.id).where(players.c.name == "🎮 player"))
    assert emoji == 1


async def test_create_tables_twice_and_from_two_processes(db_url: str, tmp_path: Path) -> None:
    """Two servers starting at once against one database both create the tables without an error."""
    first, second = Sql.open(db_config(db_url), tmp_path), Sql.open(db_config(db_url), tmp_path)
    try:
        await asyncio.gather(first.create_tables(meta), second.create_tables(meta))
        await first.create_tables(meta)
        await first.execute(counters.insert().values(name="c", n=1))
        assert await second.fetch_value(sa.select(counters.c.n)) == 1
        if first.dialect == "sqlite":
            assert await second.fetch_value(sa.text("PRAGMA journal_mode")) == "wal"
    finally:
        await first.close()
        await second.close()


@pytest.mark.integration
async def test_start_refuses_a_database_that_answers_no(mariadb_url: str, tmp_path: Path) -> None:
    """Wrong database name or credentials will not heal by waiting: start-up fails with a clear message."""
    url = sa.make_url(mariadb_url).set(database="gstest_does_not_exist").render_as_string(hide_password=False)
    db = Sql.open(db_config(url), tmp_path)
    try:
        with pytest.raises(ConfigError, match="db.url: cannot prepare the schema: .*1049"):
            await db.start(Schema.of({}, "upgrade").prepare)
    finally:
        await db.close()


def test_unknown_driver_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="db.url"):
        Sql.open(db_config("postgresql+asyncpg://localhost/x"), tmp_path)


async def test_a_writer_that_waits_too_long_is_unavailable(tables: Sql, db_url: str, tmp_path: Path) -> None:
    """A write lock held past ``db.query_timeout`` (SQLite's busy timeout, MariaDB's read timeout on the blocked
    statement) answers ``unavailable``, not ``internal``."""
    await tables.execute(counters.insert().values(name="c", n=0))
    impatient = Sql.open(db_config(db_url, query_timeout=0.2), tmp_path)
    try:
        async with tables.transaction() as tx:
            await tx.execute(counters.update().values(n=1))  # holds the row (MariaDB) or the file (SQLite)
            with pytest.raises(sa.exc.OperationalError) as raised:
                await impatient.execute(counters.update().values(n=2))
            assert is_unavailable(raised.value)
    finally:
        await impatient.close()
    assert await tables.fetch_value(sa.select(counters.c.n)) == 1


# db.run(): a transaction body that is run again when it loses a lock conflict.


async def test_run_commits_and_returns_what_the_body_returns(tables: Sql) -> None:
    async def add(tx: AsyncConnection, name: str, *, coins: int) -> int:
        result = await tx.execute(players.insert().values(name=name, coins=coins))
        return int(result.inserted_primary_key[0])

    assert await tables.run(add, "ann", coins=3) == 1
    assert await tables.fetch_value(sa.select(players.c.coins)) == 3


async def test_run_rolls_back_and_does_not_retry_what_is_not_a_lock_conflict(tables: Sql) -> None:
    await tables.execute(players.insert().values(name="ann"))
    calls = 0

    async def refuse(tx: AsyncConnection) -> None:
        nonlocal calls
        calls += 1
        await tx.execute(players.insert().values(name="bob"))
        raise Refused()

    async def duplicate(tx: AsyncConnection) -> None:
        nonlocal calls
        calls += 1
        await tx.execute(players.insert().values(name="cid"))
        await tx.execute(players.insert().values(name="ann"))

    with pytest.raises(Refused):
        await tables.run(refuse)
    with pytest.raises(sa.exc.IntegrityError):
        await tables.run(duplicate)
    assert calls == 2
    assert await names(tables) == ["ann"]


async def test_run_refuses_what_it_cannot_retry(tables: Sql) -> None:
    """The mistakes a module author can make with db.run() fail on the first call, not under contention."""

    async def body(tx: AsyncConnection) -> None:
        await tx.execute(counters.insert().values(name="c", n=1))

    with pytest.raises(TypeError, match=r"db.run\(fn, \*args\)"):
        await tables.run(body(None))  # type: ignore[arg-type]  # a coroutine: it could run only once
    with pytest.raises(TypeError, match="not an awaitable"):
        await tables.run(lambda tx: None)  # type: ignore[arg-type, return-value]

    async def nested_run(tx: AsyncConnection) -> None:
        await tables.run(body)  # would commit apart from the outer body, once per retry

    async def nested_transaction(tx: AsyncConnection) -> None:
        async with tables.transaction():
            pass

    for nested in (nested_run, nested_transaction):
        with pytest.raises(RuntimeError, match="use the body's tx"):
            await tables.run(nested)
    await tables.run(lambda tx: body(tx))  # a plain function returning a fresh coroutine per call is fine
    assert await tables.fetch_value(sa.select(counters.c.n)) == 1


async def crossed_updates(db: Sql, *, plain: bool = False) -> tuple[list[BaseException | None], int]:
    """Two transactions that update rows a and b in opposite order, each waiting (on its first attempt) until
    the other holds its first row: a real deadlock on MariaDB, which fails one of them. Returns each one's
    exception (None: committed) and how many times the bodies ran."""
    await db.execute(counters.insert(), [{"name": "a", "n": 0}, {"name": "b", "n": 0}])  # type: ignore[arg-type]
    holds = {"a": asyncio.Event(), "b": asyncio.Event()}
    runs = 0

    async def body(tx: AsyncConnection, first: str, second: str) -> None:
        nonlocal runs
        runs += 1
        await tx.execute(counters.update().where(counters.c.name == first).values(n=counters.c.n + 1))
        holds[first].set()
        await holds[second].wait()  # set already on a retry: the winner has committed or soon will
        await tx.execute(counters.update().where(counters.c.name == second).values(n=counters.c.n + 1))

    async def caller(first: str, second: str) -> None:
        if plain:
            async with db.transaction() as tx:
                await body(tx, first, second)
        else:
            await db.run(body, first, second)

    results = await asyncio.gather(caller("a", "b"), caller("b", "a"), return_exceptions=True)
    return list(results), runs


@pytest.mark.integration
async def test_a_real_deadlock_is_retried_and_both_callers_succeed(mariadb_database: str, tmp_path: Path) -> None:
    db = Sql.open(db_config(mariadb_database, retries=3), tmp_path)
    try:
        await db.create_tables(meta)
        errors, runs = await crossed_updates(db)
        assert errors == [None, None]
        assert runs == 3  # the deadlock's victim ran its body twice
        rows = await db.fetch_all(sa.select(counters.c.name, counters.c.n).order_by(counters.c.name))
        assert [tuple(row) for row in rows] == [("a", 2), ("b", 2)]
    finally:
        await db.close()


@pytest.mark.integration
@pytest.mark.parametrize("plain", [False, True], ids=["retries=0", "transaction"])
async def test_without_retries_a_deadlock_fails_one_caller(mariadb_database: str, tmp_path: Path, plain: bool) -> None:
    db = Sql.open(db_config(mariadb_database, retries=0), tmp_path)
    try:
        await db.create_tables(meta)
        errors, runs = await crossed_updates(db, plain=plain)
        assert runs == 2
        failed = [e for e in errors if e is not None]
        assert len(failed) == 1, errors
        (exc,) = failed
        assert isinstance(exc, sa.exc.OperationalError) and error_code(exc) == 1213  # ER_LOCK_DEADLOCK
        assert is_transient(exc) and is_unavailable(exc)  # answered `unavailable`, not `internal`
        rows = await db.fetch_all(sa.select(counters.c.n).order_by(counters.c.name))
        assert [row.n for row in rows] == [1, 1]  # the victim's first update was rolled back
    finally:
        await db.close()


async def test_a_lock_wait_that_times_out_is_retried(
    tables: Sql, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite's "database is locked" after the busy timeout, MariaDB's lock wait timeout (1205, after
    ``innodb_lock_wait_timeout``, which the connection sets to half of ``db.query_timeout``): the transaction
    runs again, and succeeds once the holder has committed."""
    db = tables
    await db.execute(counters.insert().values(name="c", n=0))
    sqlite = db.dialect == "sqlite"
    patient = Sql.open(db_config(db_url, query_timeout=0.2 if sqlite else 2.0, retries=3), tmp_path)
    retried = asyncio.Event()
    runs = 0

    class OnRetry(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("transaction retried"):
                retried.set()

    async def increment(tx: AsyncConnection) -> None:
        nonlocal runs
        runs += 1
        locked = sa.select(counters.c.n).where(counters.c.name == "c").with_for_update()
        n = (await tx.execute(locked)).scalar_one()  # SQLite: the write lock was taken at BEGIN IMMEDIATE
        await tx.execute(counters.update().where(counters.c.name == "c").values(n=n + 1))

    async def holder() -> None:
        async with db.transaction() as tx:
            await tx.execute(counters.update().values(n=10))
            waiter = asyncio.create_task(patient.run(increment))
            await retried.wait()  # the waiter lost its first attempt: commit, so that the next one gets the lock
        await waiter

    handler = OnRetry()
    sql_log = logging.getLogger("gameserver.sql")
    sql_log.addHandler(handler)
    try:
        with caplog.at_level(logging.DEBUG, logger="gameserver.sql"):
            await holder()
    finally:
        sql_log.removeHandler(handler)
        await patient.close()
    assert await db.fetch_value(sa.select(counters.c.n)) == 11
    assert runs == (1 if sqlite else 2)  # SQLite's first attempt failed at BEGIN, before the body


async def test_mariadb_lock_waits_end_before_the_query_timeout(mariadb_url: str, tmp_path: Path) -> None:
    """A lock wait must fail with 1205 (retried) before ``read_timeout`` drops the connection (not retried)."""
    db = Sql.open(db_config(mariadb_url, query_timeout=10.0), tmp_path)
    try:
        assert await db.fetch_value(sa.text("SELECT @@session.innodb_lock_wait_timeout")) == 5
    finally:
        await db.close()


@pytest.mark.integration
async def test_a_connection_lost_while_committing_is_outcome_unknown(mariadb_database: str, tmp_path: Path) -> None:
    """The connection dies between the body and the COMMIT (here: killed by another connection, as a crashed or
    restarted server would drop it): the database may have committed or not, so the answer is ``outcome_unknown``,
    not ``unavailable`` (which says nothing was done); a body that fails on the dead connection is ``unavailable``."""
    db = Sql.open(db_config(mariadb_database), tmp_path)
    await db.create_tables(meta)
    killer = Sql.open(db_config(mariadb_database), tmp_path)
    try:
        with pytest.raises(OutcomeUnknown) as raised:
            async with db.transaction() as tx:
                await tx.execute(counters.insert().values(name="lost", n=1))
                own = await tx.scalar(sa.text("SELECT CONNECTION_ID()"))
                await killer.execute(sa.text(f"KILL CONNECTION {int(own)}"))
        assert raised.value.code == "outcome_unknown" and is_unavailable(raised.value.__cause__)  # type: ignore[arg-type]
        with pytest.raises(sa.exc.DBAPIError) as failed:
            async with db.transaction() as tx:
                own = await tx.scalar(sa.text("SELECT CONNECTION_ID()"))
                await killer.execute(sa.text(f"KILL CONNECTION {int(own)}"))
                await tx.execute(counters.insert().values(name="never", n=1))
        assert is_unavailable(failed.value)
        assert await db.fetch_value(sa.select(sa.func.count()).select_from(counters)) == 0  # neither committed
    finally:
        await killer.close()
        await db.close()
