"""The ``redis`` resource: redis.asyncio against a real server, or fakeredis in-process by default.

Both answer the same redis.asyncio API (Lua scripts and pub/sub included), so module code does not change
between a laptop and production. Replies are decoded to ``str``. A real server that restarts is
reconnected on the next command (one retry on a dropped connection); a server that is down fails within
``redis.connect_timeout``, one that hangs within ``redis.timeout``, which handlers see as ``unavailable``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from gameserver.config import RedisConfig

REDIS_PORT = 6379


def describe_redis(url: str) -> str:
    """Which Redis ``redis.url`` names, without credentials: ``redis 127.0.0.1:6379/0``, ``redis (in-process)``."""
    if not url:
        return "redis (in-process)"
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"redis {parts.path}"
    return f"redis {parts.hostname}:{parts.port or REDIS_PORT}{parts.path or '/0'}"


def open_redis(config: RedisConfig, *, decode: bool = True, fake_server: Any = None) -> redis.asyncio.Redis:
    """Connect to ``redis.url``; with no URL, a client of ``fake_server`` (a ``fakeredis.FakeServer``: one per
    app, so that every client of one server process sees the same data)."""
    if not config.url:
        import fakeredis

        client: redis.asyncio.Redis = fakeredis.FakeAsyncRedis(
            server=fake_server or fakeredis.FakeServer(), decode_responses=decode
        )
        return client
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        config.url,
        decode_responses=decode,
        socket_connect_timeout=config.connect_timeout,
        socket_timeout=config.timeout,
        health_check_interval=30,
        # A burst of commands past max_connections (every player logging in to chat after a restart) waits for a
        # free connection, up to connect_timeout, instead of failing at once with "Too many connections".
        max_connections=config.max_connections,
        timeout=config.connect_timeout,
        # One immediate retry on a dropped connection (a restarted server), none on a timeout: the command
        # may have run, and a hung server would double the wait.
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    return redis.asyncio.Redis.from_pool(pool)
