"""Fixtures for the game modules' tests: handlers are called directly with the resources they would be
injected (STYLE.md: "Handler tests call handlers directly"), over both SQL backends.

``db`` is parametrised over SQLite and MariaDB (``integration``; a throw-away database per test, dropped
afterwards); ``redis`` is the in-process store (real-Redis tests ask for ``real_redis`` and get a key prefix
of their own, deleted afterwards: never FLUSHALL the shared Redis).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from redis.asyncio import Redis

import modules.account
import modules.family
import modules.friends
import modules.inventory
import modules.mail  # noqa: F401  (the modules' tables join the metadata)
from gameserver.config import Config, DbConfig, RedisConfig
from gameserver.features.identity.accounts import create_account
from gameserver.features.mailbox import MailStore
from gameserver.keys import Keys
from gameserver.storage.kv import open_redis
from gameserver.dispatch.registry import discover
from gameserver.storage.migrate import Schema
from gameserver.storage.sql import Sql
from tests.conftest import delete_prefixed, new_prefix


def open_db(url: str, tmp_path: Path) -> Sql:
    return Sql.open(DbConfig(url=url, connect_timeout=3.0, query_timeout=10.0), tmp_path)


@pytest.fixture
async def db(db_url: str, tmp_path: Path) -> AsyncIterator[Sql]:
    sql = open_db(db_url, tmp_path)
    await Schema.of(discover(), "upgrade").upgrade(sql)
    yield sql
    await sql.close()


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def real_redis(redis_url: str) -> AsyncIterator[tuple[Redis, str]]:
    """A client of the shared Redis and a key prefix of this test's own."""
    prefix = new_prefix()
    client = open_redis(RedisConfig(url=redis_url))
    try:
        yield client, prefix
    finally:
        await client.aclose()
        await delete_prefixed(redis_url, prefix)


@dataclass
class Pushes:
    """Records what handlers push: ``(uid, event, data)``."""

    sent: list[tuple[int, str, Any]] = field(default_factory=list)

    def __call__(self, uid: int, event: str, data: Any) -> None:
        self.sent.append((uid, event, data))

    def of(self, uid: int) -> list[tuple[str, Any]]:
        return [(event, data) for to, event, data in self.sent if to == uid]


@pytest.fixture
def config() -> Config:
    return Config()


@pytest.fixture
def mail_store(tmp_path: Path) -> MailStore:
    return MailStore(tmp_path / "mail")


@pytest.fixture
def pushes() -> Pushes:
    return Pushes()


@pytest.fixture
def player(db: Sql) -> Callable[..., Any]:
    """``await player("name", world=1)``: a new account; returns its uid."""

    async def make(name: str, world: int = 1) -> int:
        async with db.transaction() as tx:
            return await create_account(
                tx, username=f"{name}{uuid.uuid4().hex[:6]}", password_hash="-", display_name=name, world=world
            )

    return make


@pytest.fixture
def ctx(db: Sql, redis: Redis, config: Config, mail_store: MailStore, pushes: Pushes) -> Callable[..., dict[str, Any]]:
    """``ctx(uid)``: the keyword arguments the dispatcher would inject for a request by ``uid``."""

    def make(uid: int | None, **extra: Any) -> dict[str, Any]:
        return {
            "uid": uid,
            "db": db,
            "redis": redis,
            "config": config,
            "keys": Keys(config.redis.prefix),
            "mail": mail_store,
            "push": pushes,
            "log": logging.getLogger("test"),
            **extra,
        }

    return make
