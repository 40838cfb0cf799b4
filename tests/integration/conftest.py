"""Storage fixtures: every test runs over the embedded backend and the real one (STYLE.md, "Tests in layers").

``db_url`` / ``db`` are parametrised over SQLite and MariaDB, ``kv`` over the in-process store and Redis; the
real parameters carry the ``integration`` marker and skip (fail in CI) when the service is down. Nothing
touches other people's data: MariaDB tests get a database of their own, dropped afterwards, and Redis tests
a key prefix of their own, whose keys are deleted afterwards (never FLUSHALL the shared Redis).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from gameserver.config import DbConfig, RedisConfig
from gameserver.storage.kv import open_redis
from gameserver.storage.sql import Sql
from tests.conftest import delete_prefixed, new_prefix

KV_BACKENDS = [pytest.param("embedded"), pytest.param("redis", marks=pytest.mark.integration)]
BACKENDS = [pytest.param("embedded"), pytest.param("real", marks=pytest.mark.integration)]


def db_config(url: str, **settings: Any) -> DbConfig:
    return DbConfig(**{"url": url, "connect_timeout": 2.0, "query_timeout": 5.0, **settings})


@pytest.fixture
async def db(db_url: str, tmp_path: Path) -> AsyncIterator[Sql]:
    sql = Sql.open(db_config(db_url), tmp_path)
    yield sql
    await sql.close()


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own on the shared Redis; its keys are deleted at teardown."""
    prefix = new_prefix()
    yield prefix
    await delete_prefixed(redis_url, prefix)


@dataclass
class Kv:
    """A Redis client under test and the prefix its keys and channels must use."""

    redis: Redis
    prefix: str
    backend: str
    open: Callable[[], Redis]  # another client of the same server (the caller closes it)

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"


@pytest.fixture(params=KV_BACKENDS)
def kv_config(request: pytest.FixtureRequest) -> RedisConfig:
    if request.param == "embedded":
        return RedisConfig()
    return RedisConfig(url=request.getfixturevalue("redis_url"), connect_timeout=2.0, timeout=5.0)


@pytest.fixture
async def kv(kv_config: RedisConfig) -> AsyncIterator[Kv]:
    if kv_config.url:
        server, backend = None, "redis"
    else:
        import fakeredis

        server, backend = fakeredis.FakeServer(), "embedded"
    prefix = new_prefix()

    def another() -> Redis:
        return open_redis(kv_config, fake_server=server)

    client = another()
    try:
        yield Kv(client, prefix, backend, another)
    finally:
        await client.aclose()
        if kv_config.url:
            await delete_prefixed(kv_config.url, prefix)


@pytest.fixture(params=BACKENDS)
def backends(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    """Config sections for an app on the embedded backends (SQLite, in-process store) or the real ones."""
    if request.param == "embedded":
        return {}
    return {
        "db": {"url": request.getfixturevalue("mariadb_database")},
        "redis": {"url": request.getfixturevalue("redis_url"), "prefix": request.getfixturevalue("redis_prefix")},
    }
