"""The server itself killed and stopped under a write load (issue 12).

SIGKILL: the requests in flight get no answer (they may or may not have been applied, never twice); a restart on
the same ports and data serves the reconnecting clients. SIGTERM (the drain, PROTOCOL.md "Shutdown"): every request
the server read is answered with its real outcome, the ones it did not read are answered `unavailable` or not read
at all, and the process exits 0 within ``server.shutdown_grace``, with a hung database too.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.reliability.harness import (
    ROWS,
    Load,
    Row,
    Server,
    backends,
    check,
    inventory_counts,
    mailbox_subjects,
    players,
    seed,
    tally,
)

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

WRITERS = 10
DEPTH = 4  # requests in flight per connection in the drain tests: pipelining clients keep the drain busy
WARM = 30  # writes acknowledged before the fault, and after the restart
GRACE = 5.0  # server.shutdown_grace (Server's default setting)
EXIT_GUARD = 30.0  # the longest the test waits for an exit before failing


async def test_server_sigkill_mid_load(tmp_path: Path) -> None:
    async with backends(tmp_path) as (mariadb, redis):
        server = Server(tmp_path, mariadb, redis)
        await server.start()
        try:
            await server.wait_healthy()
            writers, recipient = await players(server, WRITERS)
            await seed(mariadb, writers)
            async with Load(server, writers, recipient) as load:
                await load.acknowledged(WARM)
                started, tracebacks = time.monotonic(), server.tracebacks()
                server.kill()
                restarted = time.monotonic()
                await server.start()
                recovery = await load.acknowledged(WARM, after=restarted)
            anomalies = check(
                load.ledger, writers, await inventory_counts(mariadb), mailbox_subjects(server.data_dir, recipient.uid)
            )
            row = tally(
                Row("server SIGKILL mid-load, restarted", recovery=recovery),
                load.ledger.between(started, time.monotonic()),
                anomalies,
            )
            row.tracebacks = server.tracebacks() - tracebacks
            row.survived = not anomalies
            ROWS.append(row)
            assert anomalies == [], anomalies[:10]
            assert server.tracebacks() == 0, server.logs()[-5000:]
        finally:
            server.kill()


async def test_server_sigterm_mid_load_answers_every_request_it_read(tmp_path: Path) -> None:
    """A request without an answer must not have been applied: the drain answers every request it read, so one it
    did not answer was never read."""
    async with backends(tmp_path) as (mariadb, redis):
        server = Server(tmp_path, mariadb, redis)
        await server.start()
        try:
            await server.wait_healthy()
            writers, recipient = await players(server, WRITERS)
            await seed(mariadb, writers)
            async with Load(server, writers, recipient, depth=DEPTH) as load:
                await load.acknowledged(WARM)
                started, tracebacks = time.monotonic(), server.tracebacks()
                server.signal(signal.SIGTERM)
                status = await server.wait(EXIT_GUARD)
                exited = time.monotonic() - started
                restarted = time.monotonic()
                await server.start()
                recovery = await load.acknowledged(WARM, after=restarted)
            anomalies = check(
                load.ledger,
                writers,
                await inventory_counts(mariadb),
                mailbox_subjects(server.data_dir, recipient.uid),
                unknown_not_applied=True,
            )
            row = tally(
                Row(f"server SIGTERM mid-load (exit {status} after {exited:.1f} s), restarted", recovery=recovery),
                load.ledger.between(started, time.monotonic()),
                anomalies,
            )
            row.tracebacks = server.tracebacks() - tracebacks
            row.survived = status == 0 and not anomalies
            ROWS.append(row)
            assert status == 0
            assert exited <= GRACE + 1.0, f"exit {exited:.2f}s after SIGTERM, grace {GRACE}s"
            assert anomalies == [], anomalies[:10]
            assert server.tracebacks() == 0, server.logs()[-5000:]
        finally:
            server.kill()


async def test_server_sigterm_with_a_hung_database_exits_within_the_grace(tmp_path: Path) -> None:
    """Requests stuck on a SIGSTOPped MariaDB do not hold the exit past
    ``server.shutdown_grace``; what they did is settled by the database (here: nothing, it never answered)."""
    async with backends(tmp_path) as (mariadb, redis):
        server = Server(tmp_path, mariadb, redis)
        await server.start()
        try:
            await server.wait_healthy()
            writers, recipient = await players(server, WRITERS)
            await seed(mariadb, writers)
            async with Load(server, writers, recipient, depth=DEPTH) as load:
                await load.acknowledged(WARM)
                mariadb.freeze()
                started = time.monotonic()
                server.signal(signal.SIGTERM)
                status = await server.wait(EXIT_GUARD)
                exited = time.monotonic() - started
                mariadb.thaw()
                restarted = time.monotonic()
                await server.start()
                recovery = await load.acknowledged(WARM, after=restarted)
            anomalies = check(
                load.ledger, writers, await inventory_counts(mariadb), mailbox_subjects(server.data_dir, recipient.uid)
            )
            row = tally(
                Row(f"server SIGTERM with MariaDB hung (exit {status} after {exited:.1f} s)", recovery=recovery),
                load.ledger.between(started, time.monotonic()),
                anomalies,
            )
            row.tracebacks = server.tracebacks()
            row.survived = status == 0 and not anomalies and row.tracebacks == 0
            ROWS.append(row)
            assert status == 0, server.logs()[-3000:]
            assert exited <= GRACE + 1.0, f"exit {exited:.2f}s after SIGTERM, grace {GRACE}s"
            assert anomalies == [], anomalies[:10]
            assert row.tracebacks == 0, server.logs()[-5000:]
        finally:
            mariadb.thaw()
            server.kill()
