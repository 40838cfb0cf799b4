"""A backend that is down or hangs: handlers that need it answer ``unavailable`` before their deadline, the
rest of the server keeps serving, and ``/healthz`` answers 503 naming the failed check (PROTOCOL.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from gameserver.app import App
from tests.clients import TcpClient, http_url
from tests.integration.private_services import PrivateMariadb, PrivateRedis, black_hole, free_port

# A hang would be answered `timeout` at this deadline: `unavailable` proves the backend failed fast.
DEADLINE = {"timeout": 20.0}


async def health(app: App) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        async with session.get(http_url(app, "/healthz")) as response:
            return response.status, await response.json()


async def check_degraded(app: App) -> None:
    token = app.resources.extra["tokens"].issue(1)
    client = await TcpClient.open(app.ports["gate-tcp"])
    try:
        assert (await client.call("sys.echo", {"still": "serving"}))["data"] == {"still": "serving"}
        for fn, args in [
            ("leaderboard.submit", {"board": "global", "score": 1}),  # db first
            ("leaderboard.top", {"board": "global"}),  # redis first
        ]:
            reply = await client.call(fn, args, token=token)
            assert reply["error"] == {"code": "unavailable", "message": "a backend is unavailable"}, fn
    finally:
        await client.close()
    status, body = await health(app)
    assert (status, body["status"]) == (503, "unhealthy")
    db_port, redis_port = sa.make_url(app.config.db.url).port, sa.make_url(app.config.redis.url).port
    assert body["checks"]["db"].startswith(f"mysql 127.0.0.1:{db_port}/game: unreachable: OperationalError: (2003, ")
    assert body["checks"]["redis"].startswith(f"redis 127.0.0.1:{redis_port}/0: ")
    # The bus's broker is that Redis too (server.bus = "redis": the worker takes remote gates' requests from it).
    assert all(value == "ok" for name, value in body["checks"].items() if name not in ("db", "redis", "bus"))


async def test_closed_ports(app_factory: Callable[..., Any]) -> None:
    """Nothing listens: the server still starts (tables wait for the database) and reports unhealthy."""
    app = await app_factory(
        db={"url": f"mysql+asyncmy://root@127.0.0.1:{free_port()}/game", "connect_timeout": 1.0},
        redis={"url": f"redis://127.0.0.1:{free_port()}/0", "connect_timeout": 1.0},
        worker=DEADLINE,
    )
    await check_degraded(app)


async def test_backends_that_accept_and_never_answer(app_factory: Callable[..., Any]) -> None:
    """A hung server (accepts, says nothing) fails within the connect/query timeouts, not at the deadline."""
    async with black_hole() as db_port, black_hole() as redis_port:
        app = await app_factory(
            db={"url": f"mysql+asyncmy://root@127.0.0.1:{db_port}/game", "connect_timeout": 0.5},
            redis={"url": f"redis://127.0.0.1:{redis_port}/0", "connect_timeout": 0.5, "timeout": 0.5},
            worker=DEADLINE,
        )
        await check_degraded(app)


async def check_serving(app: App, uid: int, score: int, expected_rank: dict[str, int]) -> None:
    token = app.resources.extra["tokens"].issue(uid)
    client = await TcpClient.open(app.ports["gate-tcp"])
    try:
        reply = await client.call("leaderboard.submit", {"board": "global", "score": score}, token=token)
        assert reply["ok"], reply
        reply = await client.call("leaderboard.top", {"board": "global"})
        assert reply["ok"], reply
        assert (await client.call("leaderboard.rank", {"board": "global"}, token=token))["data"] == expected_rank
    finally:
        await client.close()
    status, body = await health(app)
    assert (status, body["checks"]["db"], body["checks"]["redis"]) == (200, "ok", "ok")


@pytest.mark.integration
async def test_backends_that_start_late_crash_and_restart(app_factory: Callable[..., Any], tmp_path: Path) -> None:
    """Our own mariadbd and redis-server (never the shared ones), stopped and started under a running app:
    the app starts without them, serves once they are up, answers `unavailable` while they are down, and
    reconnects when they are back, without a restart."""
    mariadb, redis = PrivateMariadb(tmp_path / "mariadb"), PrivateRedis(tmp_path / "redis")
    try:
        app = await app_factory(
            db={"url": mariadb.url("game"), "connect_timeout": 2.0},
            redis={"url": redis.url(), "connect_timeout": 2.0},
            worker=DEADLINE,
        )
        await check_degraded(app)  # started while both are down
        await mariadb.start()
        await mariadb.create_database("game")
        await redis.start()
        await check_serving(app, uid=1, score=10, expected_rank={"score": 10, "rank": 1})  # tables created now

        mariadb.kill()  # SIGKILL: a crash, with connections in the pools
        redis.kill()
        await check_degraded(app)

        await mariadb.start()  # same port, same data dir
        await redis.start()
        await check_serving(app, uid=2, score=5, expected_rank={"score": 5, "rank": 2})  # uid 1's 10 survived

        mariadb.kill()  # a restart while nobody asks: the pools still hold connections to the dead servers
        redis.kill()
        await mariadb.start()
        await redis.start()
        await check_serving(app, uid=3, score=7, expected_rank={"score": 7, "rank": 2})  # first try succeeds
    finally:
        mariadb.kill()
        redis.kill()


@pytest.mark.integration
async def test_hung_backends_answer_unavailable_before_the_default_deadline(
    app_factory: Callable[..., Any], tmp_path: Path
) -> None:
    """Our own mariadbd and redis-server, SIGSTOPped with connections in the pools: with the default timeouts
    (db.query_timeout + db.connect_timeout, redis.timeout, all below worker.timeout) the handlers answer
    `unavailable`, not `timeout`, and /healthz names each backend and says it does not answer."""
    mariadb, redis = PrivateMariadb(tmp_path / "mariadb"), PrivateRedis(tmp_path / "redis")
    try:
        await mariadb.start()
        await mariadb.create_database("game")
        await redis.start()
        app = await app_factory(db={"url": mariadb.url("game")}, redis={"url": redis.url()})
        await check_serving(app, uid=1, score=10, expected_rank={"score": 10, "rank": 1})

        mariadb.freeze()
        redis.freeze()
        token = app.resources.extra["tokens"].issue(2)
        client = await TcpClient.open(app.ports["gate-tcp"])
        try:
            for fn, args in [
                ("leaderboard.submit", {"board": "global", "score": 1}),  # db first
                ("leaderboard.top", {"board": "global"}),  # redis first
            ]:
                reply = await client.call(fn, args, token=token)
                assert reply["error"] == {"code": "unavailable", "message": "a backend is unavailable"}, fn
        finally:
            await client.close()
        status, body = await health(app)
        assert status == 503
        assert body["checks"]["db"] == f"mysql 127.0.0.1:{mariadb.port}/game: no answer within 2s (hung or overloaded)"
        assert body["checks"]["redis"] == f"redis 127.0.0.1:{redis.port}/0: no answer within 2s (hung or overloaded)"

        mariadb.thaw()
        redis.thaw()
        await check_serving(app, uid=3, score=7, expected_rank={"score": 7, "rank": 2})
    finally:
        mariadb.kill()
        redis.kill()
