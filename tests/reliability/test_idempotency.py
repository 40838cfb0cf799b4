"""Retries with idempotency keys after every fault (issue 12; PROTOCOL.md "Idempotency keys", branch ``modules``).

The writers put a key on each action and send it again with the same key after any answer but ok, and after no
answer, until it is acknowledged. Across a MariaDB crash, a hung MariaDB, a Redis crash and a server SIGKILL each
action must be applied exactly once, whatever happened to its tries (the envelope field ``idem``). Without the
keys, an action whose first try committed just before the server was killed is applied twice (most runs catch one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.reliability.harness import (
    ROWS,
    TIMEOUTS,
    Load,
    Row,
    Server,
    backends,
    check_idempotent,
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
WARM = 30


async def test_retries_with_idempotency_keys_after_every_fault(tmp_path: Path) -> None:
    async with backends(tmp_path) as (mariadb, redis):
        server = Server(tmp_path, mariadb, redis, **TIMEOUTS)
        await server.start()
        try:
            await server.wait_healthy()
            writers, recipient = await players(server, WRITERS)
            await seed(mariadb, writers)

            async def server_crash() -> float:
                server.kill()
                restarted = time.monotonic()
                await server.start()
                return restarted

            faults: list[tuple[str, Callable[[], Awaitable[float]]]] = [
                ("MariaDB kill -9, retried with keys", lambda: crash_and_restart(mariadb)),
                ("MariaDB SIGSTOP, retried with keys", lambda: hang_and_resume(mariadb)),
                ("Redis kill -9, retried with keys", lambda: crash_and_restart(redis)),
                ("server SIGKILL, retried with keys", server_crash),
            ]
            windows: list[tuple[Row, float, float]] = []
            async with Load(server, writers, recipient, idempotent=True) as load:
                await load.acknowledged(WARM)
                for name, fault in faults:
                    started = time.monotonic()
                    repaired = await fault()
                    recovery = await load.acknowledged(WARM, after=repaired)
                    windows.append((Row(name, recovery=recovery), started, time.monotonic()))
                    await asyncio.sleep(0)
            anomalies = check_idempotent(
                load.ledger, writers, await inventory_counts(mariadb), mailbox_subjects(server.data_dir, recipient.uid)
            )
            for row, started, stopped in windows:
                tally(row, load.ledger.between(started, stopped), anomalies)
                row.survived = not (row.lost or row.doubled or row.applied_failed)
                ROWS.append(row)
            assert anomalies == [], anomalies[:10]
            assert server.tracebacks() == 0, server.logs()[-5000:]
        finally:
            server.kill()
