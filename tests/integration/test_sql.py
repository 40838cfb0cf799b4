"""gameserver/storage/sql.py over SQLite and MariaDB: the same tests, the same answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa

from gameserver.errors import ConfigError, GameError
from gameserver.storage.errors import is_unavailable
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
        with pytest.raises(ConfigError, match="db.url: cannot create the tables: .*1049"):
            await db.start(meta)
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
