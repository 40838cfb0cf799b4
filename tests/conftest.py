"""Fixtures shared by every layer: configs on free ports, a started app, and the real services."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from gameserver.app import App
from gameserver.config import Config, RedisConfig, load
from gameserver.storage.kv import open_redis

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
MARIADB_URL = os.environ.get("GAMESERVER_TEST_MYSQL", "mysql+asyncmy://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("GAMESERVER_TEST_REDIS", "redis://127.0.0.1:6379/0")


def make_config(data_dir: Path, **sections: dict[str, Any]) -> Config:
    """Defaults on free ports (0), a private data dir, generous rates, cheap password hashing; ``sections``
    override."""
    base: dict[str, dict[str, Any]] = {
        "server": {"data_dir": str(data_dir), "shutdown_grace": 2.0, "node_id": "test"},
        "gate": {"tcp_port": 0, "ws_port": 0, "rate": 100000.0, "burst": 100000},
        "http": {"port": 0},
        "chat": {"tcp_port": 0},
        "auth": {"hash_memory_kib": 8, "hash_time_cost": 1},  # argon2id at its cheapest: fast tests
        "db": {"migrate": "upgrade"},  # on MariaDB too: each test's database starts empty
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    overrides = {f"{section}.{key}": value for section, values in base.items() for key, value in values.items()}
    return load(None, env={}, overrides=overrides)


@pytest.fixture
def config_factory(tmp_path: Path) -> Callable[..., Config]:
    def factory(**sections: dict[str, Any]) -> Config:
        return make_config(tmp_path / "var", **sections)

    return factory


@pytest.fixture
async def app_factory(config_factory: Callable[..., Config]) -> AsyncIterator[Callable[..., Any]]:
    """Start apps in the test's loop; every one is stopped at teardown."""
    started: list[App] = []

    async def factory(config: Config | None = None, **sections: dict[str, Any]) -> App:
        app = App(config or config_factory(**sections))
        await app.start()
        started.append(app)
        return app

    yield factory
    for app in reversed(started):
        await app.stop()


@pytest.fixture
async def app(app_factory: Callable[..., Any]) -> App:
    result: App = await app_factory()
    return result


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, port: int, how: str) -> None:
    """Fail in CI, skip elsewhere, when a real service the test needs is not listening."""
    if _reachable("127.0.0.1", port):
        return
    message = f"{name} is not reachable on 127.0.0.1:{port}; start it with: {how}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def mariadb_url() -> str:
    port = urlsplit(MARIADB_URL).port or 3306  # GAMESERVER_TEST_MYSQL may name another port
    require_service("MariaDB", port, "scripts/services (or start-stop-daemon --start --exec /usr/sbin/mariadbd)")
    return MARIADB_URL


@pytest.fixture
def redis_url() -> str:
    port = urlsplit(REDIS_URL).port or 6379
    require_service("Redis", port, f"scripts/services (or redis-server --daemonize yes --port {port} --save '')")
    return REDIS_URL


SQL_BACKENDS = [pytest.param("sqlite"), pytest.param("mariadb", marks=pytest.mark.integration)]
"""SQLite, and the real MariaDB (``integration``: skips outside CI when it is down)."""


def new_prefix() -> str:
    """A Redis key prefix of this test's own (the shared Redis is never flushed)."""
    return f"gstest:{uuid.uuid4().hex}:"


async def delete_prefixed(redis_url: str, prefix: str) -> None:
    """Delete the keys under ``prefix`` (SCAN, never FLUSHALL: the Redis is shared)."""
    client = open_redis(RedisConfig(url=redis_url))
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
async def mariadb_database(mariadb_url: str) -> AsyncIterator[str]:
    """The URL of a throw-away database on the shared MariaDB, dropped at teardown.

    Its default charset is latin1 on purpose (the default of many MySQL installs): the tables gameserver
    creates must store emoji whatever the database's default.
    """
    name = f"gstest_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(mariadb_url, poolclass=NullPool)
    async with admin.begin() as conn:
        await conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET latin1")
    try:
        yield sa.make_url(mariadb_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.begin() as conn:
            await conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        await admin.dispose()


@pytest.fixture(params=SQL_BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL per SQL backend: a file in the test's tmp dir, or a throw-away MariaDB database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'game.db'}"
    url: str = request.getfixturevalue("mariadb_database")
    return url


@pytest.fixture
async def client_session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client for the app's routes (``tests.clients.http_url`` builds their addresses)."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """For tests that call the CLI in this process: a working directory without ./config.toml, and no
    GAMESERVER_* variables of the developer's (use as ``pytestmark = pytest.mark.usefixtures("cli_env")``)."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("GAMESERVER_"):
            monkeypatch.delenv(name)
