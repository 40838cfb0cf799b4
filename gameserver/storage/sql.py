"""The SQL database: one interface over embedded SQLite (default) and MariaDB/MySQL (asyncmy).

Built on SQLAlchemy Core's async engines rather than a facade of our own: one dialect-neutral way to
declare tables and write queries that compile to both SQLite and MySQL, connection pools with pre-ping
(a restarted MariaDB is reconnected on the next query, without restarting the game server), and
transactions as context managers. Modules declare tables on :data:`metadata`; the server creates the
missing ones at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import Executable

from gameserver.config import DbConfig

log = logging.getLogger("gameserver.sql")

metadata = sa.MetaData()
"""Where modules declare their tables: ``sa.Table("scores", metadata, ...)``."""


class Sql:
    """The ``db`` resource handed to handlers.

    ``async with db.transaction() as tx:`` runs its statements all or nothing (on SQLite the write lock is
    taken at BEGIN, so concurrent writers queue instead of failing with "database is locked").
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @classmethod
    def open(cls, config: DbConfig, data_dir: Path) -> Sql:
        url = config.url or f"sqlite+aiosqlite:///{data_dir / 'game.db'}"
        if url.startswith("sqlite"):
            engine = create_async_engine(url, echo=config.echo, connect_args={"timeout": config.query_timeout})
            _sqlite_pragmas(engine)
        else:
            engine = create_async_engine(
                url,
                echo=config.echo,
                pool_size=config.pool_size,
                max_overflow=config.pool_size,
                pool_pre_ping=True,
                pool_recycle=3600,
                pool_timeout=config.connect_timeout,
                connect_args={"connect_timeout": int(max(1, config.connect_timeout))},
            )
        return cls(engine)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    async def execute(self, statement: Executable, params: Mapping[str, Any] | None = None) -> int:
        """Run one statement in its own transaction; returns the rows it touched."""
        async with self.engine.begin() as conn:
            result = await conn.execute(statement, params)
            return int(result.rowcount)

    async def fetch_one(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Row[Any] | None:
        async with self.engine.connect() as conn:
            return (await conn.execute(statement, params)).first()

    async def fetch_all(self, statement: Executable, params: Mapping[str, Any] | None = None) -> list[Row[Any]]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(statement, params)).all())

    async def fetch_value(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(statement, params)).scalar()

    async def create_tables(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    # SQLAlchemy's recipe for real SQLite transactions: stop the driver's implicit BEGIN, emit our own.
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
