"""Fixtures for the game modules' tests, on :mod:`gameserver.testing` (the harness module authors use): handlers
are called directly with what the dispatcher would inject (STYLE.md: "Handler tests call handlers directly"), over
both SQL backends, without a server.

``game`` is the harness, parametrised over SQLite and MariaDB (``integration``; a throw-away database per test,
dropped afterwards); ``redis`` is its in-process store (real-Redis tests ask for ``real_redis`` and get a key prefix
of their own, deleted afterwards: never FLUSHALL the shared Redis).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from gameserver.config import Config, DbConfig, RedisConfig
from gameserver.features.mailbox import MailStore
from gameserver.storage.kv import open_redis
from gameserver.storage.sql import Sql
from gameserver.testing import Harness, harness
from tests.conftest import delete_prefixed, new_prefix


def open_db(url: str, tmp_path: Path) -> Sql:
    return Sql.open(DbConfig(url=url, connect_timeout=3.0, query_timeout=10.0), tmp_path)


@pytest.fixture
async def game(db_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with harness(tmp_path / "var", db={"url": db_url}) as started:
        yield started


@pytest.fixture
def db(game: Harness) -> Sql:
    sql: Sql = game.db
    return sql


@pytest.fixture
def redis(game: Harness) -> Redis:
    client: Redis = game.redis
    return client


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
def config(game: Harness) -> Config:
    return game.config


@pytest.fixture
def mail_store(game: Harness) -> MailStore:
    store: MailStore = game.mail
    return store


@pytest.fixture
def pushes() -> Pushes:
    return Pushes()


@pytest.fixture
def player(game: Harness) -> Callable[..., Any]:
    """``await player("name", world=1)``: a new account; returns its uid."""
    return game.player


@pytest.fixture
def ctx(game: Harness, pushes: Pushes) -> Callable[..., dict[str, Any]]:
    """``ctx(uid)``: the keyword arguments the dispatcher would inject for a request by ``uid``, with ``push``
    recorded in ``pushes``."""

    def make(uid: int | None, **extra: Any) -> dict[str, Any]:
        # Without `notify` and `presence` (optional resources, their own tests in tests/server): every push goes
        # through `pushes`, and friends.list shows no presence of the players these tests bind.
        values = {"push": pushes, "notify": None, "presence": None, "log": logging.getLogger("test"), **extra}
        return game.ctx(uid, **values)

    return make
