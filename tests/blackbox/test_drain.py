"""SIGTERM under a write load on the embedded defaults (issue 12): the process stops reading at once, answers what
was running with its real outcome, and exits 0 within ``server.shutdown_grace``.

Before the drain stopped reading, this load kept the dispatcher busy past the grace, the requests that arrived
after the cancel ran unanswered, and the process logged "node ... stopped" and was still running 20 s later,
waiting for thousands of tasks queued on SQLite (asyncio's exit cancels and awaits every task left)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.blackbox.test_gate_e2e import EXIT_MARGIN, start_server
from tests.clients import TcpClient

pytestmark = pytest.mark.blackbox

GRACE = 2.0
WRITERS = 10  # pipelining connections submitting scores, next to as many idle ones
WINDOW = 32  # requests a writer keeps outstanding (pipelining): the server never runs out of work
PASSWORD = "drain-test-password"


async def writer(client: TcpClient, replies: dict[int, dict[str, Any]], stop: asyncio.Event) -> None:
    """Submit rising scores, ``WINDOW`` outstanding at a time, until ``stop``; collect every reply by request id
    (= score) until the server closes the connection."""
    window = asyncio.Semaphore(WINDOW)

    async def read() -> None:
        try:
            while True:
                reply = await client.recv()
                replies[reply["id"]] = reply
                window.release()
        except (asyncio.IncompleteReadError, ConnectionError):
            return  # closed by the server after its last reply

    reader = asyncio.create_task(read())
    score = 0
    while not stop.is_set() and not reader.done():
        try:
            async with asyncio.timeout(0.1):
                await window.acquire()
        except TimeoutError:
            continue
        score += 1
        client.send({"id": score, "fn": "leaderboard.submit", "args": {"board": "global", "score": score}})
    await reader


async def test_sigterm_under_a_write_load_answers_truly_and_exits_within_the_grace(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--set", f"server.shutdown_grace={GRACE}")
    try:
        clients, uids = [], []
        for n in range(WRITERS):
            client = await TcpClient.open(server.tcp)
            reply = await client.call("auth.register", {"username": f"drain{n}", "password": PASSWORD})
            assert reply["ok"], reply
            clients.append(client)
            uids.append(reply["data"]["uid"])
        idle = [await TcpClient.open(server.tcp) for _ in range(WRITERS)]
        replies: list[dict[int, dict[str, Any]]] = [{} for _ in clients]
        stop = asyncio.Event()
        writers = [asyncio.create_task(writer(c, r, stop)) for c, r in zip(clients, replies, strict=True)]
        while sum(len(r) for r in replies) < 50 * WRITERS:  # under steady load, a window in flight on each
            await asyncio.sleep(0.05)
        server.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(server.process.wait, GRACE + EXIT_MARGIN)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {GRACE + EXIT_MARGIN}s after SIGTERM:\n{server.output()}") from None
        stop.set()
        await asyncio.gather(*writers)
        for client in idle:
            assert await client.closed()
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
    assert code == 0, server.output()
    errors = [reply["error"] for r in replies for reply in r.values() if not reply["ok"]]
    assert {error["code"] for error in errors} <= {"outcome_unknown", "unavailable"}
    # `unavailable` says nothing was done: only a pool that had no connection to give may say it, never a cancel.
    assert all("shutting down" not in error["message"] for error in errors)
    with sqlite3.connect(tmp_path / "var" / "game.db") as db:
        best = dict(db.execute("SELECT uid, score FROM leaderboard_scores WHERE board = 'global'").fetchall())
    for uid, answered in zip(uids, replies, strict=True):
        acknowledged = max((score for score, reply in answered.items() if reply["ok"]), default=0)
        assert best.get(uid, 0) >= acknowledged  # every acknowledged write is there
