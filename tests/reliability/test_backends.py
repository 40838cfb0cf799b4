"""Backend faults under a write load, and start-up with each backend down (issue 12): the server answers
`unavailable` while a backend is gone or hung, recovers when it is back without a restart, and no write is lost,
doubled, or applied but reported failed."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.reliability.harness import (
    DOWN,
    ROWS,
    TIMEOUTS,
    Load,
    Row,
    Server,
    backends,
    check,
    crash_and_restart,
    hang_and_resume,
    inventory_counts,
    mailbox_subjects,
    players,
    seed,
    tally,
)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

WRITERS = 6
WARM = 30  # writes acknowledged before the first fault, and after each recovery before the next


async def test_backend_faults_under_write_load(tmp_path: Path) -> None:
    async with backends(tmp_path) as (mariadb, redis):
        server = Server(tmp_path, mariadb, redis, **TIMEOUTS)
        await server.start()
        try:
            await server.wait_healthy()
            writers, recipient = await players(server, WRITERS)
            await seed(mariadb, writers)
            faults: list[tuple[str, Callable[[], Awaitable[float]]]] = [
                ("MariaDB kill -9 and restart under load", lambda: crash_and_restart(mariadb)),
                ("MariaDB SIGSTOP (hung) under load", lambda: hang_and_resume(mariadb)),
                ("Redis kill -9 and restart under load", lambda: crash_and_restart(redis)),
                ("Redis SIGSTOP (hung) under load", lambda: hang_and_resume(redis)),
            ]
            windows: list[tuple[Row, float, float, int]] = []
            async with Load(server, writers, recipient) as load:
                await load.acknowledged(WARM)
                for name, fault in faults:
                    started, tracebacks = time.monotonic(), server.tracebacks()
                    repaired = await fault()
                    recovery = await load.acknowledged(WARM, after=repaired)
                    row = Row(name, recovery=recovery, tracebacks=server.tracebacks() - tracebacks)
                    windows.append((row, started, time.monotonic(), tracebacks))
            anomalies = check(
                load.ledger, writers, await inventory_counts(mariadb), mailbox_subjects(server.data_dir, recipient.uid)
            )
            for row, started, stopped, _ in windows:
                tally(row, load.ledger.between(started, stopped), anomalies)
                row.survived = server.alive() and not (row.lost or row.doubled or row.applied_failed)
                ROWS.append(row)
            assert anomalies == [], anomalies[:10]
            failed_codes = {a.code for a in load.ledger.attempts if a.outcome != "ok"}
            assert failed_codes <= {"unavailable", "outcome_unknown", ""}, failed_codes  # never `timeout`, `internal`
            assert server.alive()
            await server.wait_healthy()
            assert server.tracebacks() == 0, server.logs()[-5000:]
        finally:
            server.kill()


async def test_start_up_with_each_backend_down(tmp_path: Path) -> None:
    """The server starts without its database, then without its Redis: /healthz names the missing one, writes
    answer `unavailable`, and once it is started they succeed, without a restart of the server."""
    async with backends(tmp_path) as (mariadb, redis):
        server = Server(tmp_path, mariadb, redis)
        await server.start()  # once with both, to create the tables and the players
        await server.wait_healthy()
        writers, recipient = await players(server, WRITERS)
        await seed(mariadb, writers)
        server.signal(signal.SIGTERM)
        assert await server.wait(30.0) == 0
        load: Load | None = None
        try:
            for name, backend, check_name, where in [
                ("start-up with MariaDB down, then started", mariadb, "db", f"mysql 127.0.0.1:{mariadb.port}/game: "),
                ("start-up with Redis down, then started", redis, "redis", f"redis 127.0.0.1:{redis.port}/0: "),
            ]:
                backend.kill()
                tracebacks = server.tracebacks()
                await server.start()
                status, body = await server.health()
                assert status == 503 and body["checks"][check_name].startswith(where), body
                started = time.monotonic()
                load = Load(server, writers, recipient, tag=check_name)
                async with load:
                    await asyncio.sleep(DOWN)  # the load runs into the missing backend
                    await backend.start()
                    recovery = await load.acknowledged(WARM, after=time.monotonic())
                anomalies = check(
                    load.ledger,
                    writers,
                    await inventory_counts(mariadb),
                    mailbox_subjects(server.data_dir, recipient.uid),
                )
                row = tally(Row(name, recovery=recovery), load.ledger.between(started, time.monotonic()), anomalies)
                row.tracebacks = server.tracebacks() - tracebacks
                row.survived = server.alive() and not anomalies
                ROWS.append(row)
                assert anomalies == [], anomalies[:10]
                assert {a.code for a in load.ledger.attempts if a.outcome != "ok"} <= {
                    "unavailable",
                    "outcome_unknown",
                    "",
                }
                assert (await server.health())[0] == 200
                server.signal(signal.SIGTERM)
                assert await server.wait(30.0) == 0
                await seed(mariadb, writers)  # the next round's ledger starts from STOCK again
            assert server.tracebacks() == 0, server.logs()[-5000:]
        finally:
            server.kill()
