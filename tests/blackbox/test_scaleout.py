"""Scale-out by roles (issue 13, "How it is checked"): two gates, two workers and a chat process as separate
`gameserver run --roles ...` processes on the real Redis and MariaDB, once with ``server.bus = "redis"`` and once
with ``"nats"``. Clients on both gates write through ``testkit.record`` (one MariaDB row per call) and chat; a
worker is SIGKILLed in the middle of the load, then a gate. Every request on the surviving gate gets exactly one
reply, no write is applied twice (rows per op counted in MariaDB), and the survivors keep serving.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from gameserver.bus.nats import subject_prefix
from tests.blackbox.support import READY, START_TIMEOUT, clean_env, run_command, stop
from tests.clients import ChatClient, TcpClient
from tests.conftest import delete_prefixed, require_service
from tests.fixtures.modules import PATH as FIXTURE_MODULES

pytestmark = [pytest.mark.blackbox, pytest.mark.integration]

NATS_URL = "nats://127.0.0.1:4222"
CLIENTS_PER_GATE = 4
DEPTH = 4  # requests each client keeps outstanding
KILL_WORKER_AT = 150  # acknowledged writes before the worker is killed
KILL_GATE_AT = 300  # ... before the second gate is killed
DONE_AT = 450  # ... before the load stops
WAIT = 30.0  # seconds any one stage may take: a hang fails the test, nothing is timed
PASSWORD = "correct horse battery"


@dataclass
class Processes:
    tmp: Path
    settings: list[str]
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, dict[str, int]] = field(default_factory=dict)

    def start(self, **roles: str) -> None:
        """Start a process per ``name=roles`` at once; return when each has logged its ready line."""
        for name, its_roles in roles.items():
            command = run_command(self.tmp / name, *self.settings, "--set", f"server.node_id={name}", roles=its_roles)
            with open(self.tmp / f"{name}.log", "wb") as out:
                self.running[name] = subprocess.Popen(command, cwd=self.tmp, stdout=out, stderr=out, env=clean_env())
        deadline = time.monotonic() + START_TIMEOUT
        for name in roles:
            while not (match := READY.search(self.log(name))):
                assert self.running[name].poll() is None and time.monotonic() < deadline, self.log(name)
                time.sleep(0.05)  # waiting for the line; nothing asserts on elapsed time
            listeners = (item.partition("=") for item in match.group(1).strip().split(", "))
            self.ports[name] = {listener: int(port) for listener, _, port in listeners}

    def kill(self, name: str) -> None:
        os.kill(self.running[name].pid, signal.SIGKILL)
        self.running[name].wait()

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> dict[str, int]:
        return {name: stop(process) for name, process in self.running.items() if process.returncode is None}


@dataclass
class Writer:
    """One gate client writing ops with :data:`DEPTH` requests outstanding."""

    name: str
    client: TcpClient
    ops: Iterator[int] = field(default_factory=itertools.count)
    sent: dict[int, str] = field(default_factory=dict)  # request id -> op
    replies: dict[int, dict[str, Any]] = field(default_factory=dict)
    extra: list[dict[str, Any]] = field(default_factory=list)  # a second reply to one id
    lost: bool = False  # its gate went away

    @property
    def outstanding(self) -> int:
        return len(self.sent) - len(self.replies)

    def send_one(self) -> None:
        op = f"{self.name}-{next(self.ops)}"
        request_id = len(self.sent)
        self.sent[request_id] = op
        self.client.send({"id": request_id, "fn": "testkit.record", "args": {"op": op}})

    async def login(self) -> None:
        """Register: the worker that runs it binds this connection on its gate, and each write acts as the player."""
        reply = await self.client.call("auth.register", {"username": self.name, "password": PASSWORD})
        assert reply["ok"], reply
        self.sent[0] = ""
        self.replies[0] = reply

    async def run(self, stopping: asyncio.Event, progress: asyncio.Event) -> None:
        for _ in range(DEPTH):
            self.send_one()
        try:
            while self.outstanding:
                reply = await self.client.recv()
                if reply["id"] in self.replies:
                    self.extra.append(reply)
                    continue
                self.replies[reply["id"]] = reply
                progress.set()
                if not stopping.is_set():
                    self.send_one()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.lost = True


@pytest.fixture(params=["redis", "nats"])
async def cluster(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, mariadb_database: str
) -> AsyncIterator[tuple[Processes, str]]:
    if request.param == "nats":
        require_service("NATS", 4222, "scripts/services (or nats-server -a 127.0.0.1 -p 4222 -js -sd DIR)")
    prefix = f"gstest:{uuid.uuid4().hex}:"
    engine = create_async_engine(mariadb_database, poolclass=NullPool)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE testkit_ops (n BIGINT AUTO_INCREMENT PRIMARY KEY, op VARCHAR(64))")
    await engine.dispose()
    settings = [
        f"server.bus={request.param}",
        f"redis.url={redis_url}",
        f"redis.prefix={prefix}",
        f"db.url={mariadb_database}",
        f"remote.nats_url={NATS_URL}",
        "remote.reclaim_after=1.0",
        f"modules.paths={FIXTURE_MODULES}",
        "auth.secret=" + "s" * 48,
        "auth.hash_memory_kib=8",
        "auth.hash_time_cost=1",
        "gate.rate=100000",
        "gate.burst=100000",
        "chat.tcp_port=0",
        "server.shutdown_grace=3",
        "db.migrate=upgrade",  # w1 brings the fresh database to head; the others find it there
    ]
    processes = Processes(tmp_path, [item for setting in settings for item in ("--set", setting)])
    try:
        processes.start(w1="worker,auth")  # creates the tables; then the others at once
        processes.start(w2="worker,auth", g1="gate", g2="gate", chat="chat")
        yield processes, mariadb_database
        codes = processes.stop_all()
        assert set(codes.values()) == {0}, {name: processes.log(name)[-3000:] for name in codes}
    finally:
        for process in processes.running.values():
            if process.returncode is None:
                process.kill()
                process.wait()
        await delete_prefixed(redis_url, prefix)
        if request.param == "nats":
            import nats

            nc = await nats.connect(NATS_URL)
            for name in (f"{subject_prefix(prefix)}_requests", f"KV_{subject_prefix(prefix)}_gates"):
                await nc.jetstream().delete_stream(name)
            await nc.close()


async def chat_login(gate: int, chat: int, name: str) -> ChatClient:
    client = await TcpClient.open(gate)
    registered = await client.call("auth.register", {"username": name, "password": PASSWORD})
    assert registered["ok"], registered
    nonce = await client.call("auth.nonce")  # the connection is bound: the login on a worker bound it on its gate
    assert nonce["ok"], nonce
    await client.close()
    chatter = await ChatClient.tcp(chat)
    await chatter.login(nonce["data"]["nonce"])
    return chatter


async def test_two_gates_two_workers_and_a_chat_survive_a_killed_worker_and_gate(
    cluster: tuple[Processes, str],
) -> None:
    processes, db_url = cluster
    ann = await chat_login(processes.ports["g1"]["gate-tcp"], processes.ports["chat"]["chat-tcp"], "ann")
    ben = await chat_login(processes.ports["g2"]["gate-tcp"], processes.ports["chat"]["chat-tcp"], "ben")

    writers = {
        gate: [
            Writer(f"{gate}c{n}", await TcpClient.open(processes.ports[gate]["gate-tcp"]))
            for n in range(CLIENTS_PER_GATE)
        ]
        for gate in ("g1", "g2")
    }
    for writer in (w for ws in writers.values() for w in ws):
        await writer.login()
    stopping, progress = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(w.run(stopping, progress)) for ws in writers.values() for w in ws]

    def acknowledged() -> int:
        return sum(1 for ws in writers.values() for w in ws for i, r in w.replies.items() if i and r["ok"])

    async def until(count: int) -> None:
        async with asyncio.timeout(WAIT):
            while acknowledged() < count:
                progress.clear()
                await progress.wait()

    await until(KILL_WORKER_AT)
    processes.kill("w1")
    await until(KILL_GATE_AT)
    processes.kill("g2")
    await until(DONE_AT)  # the survivors keep serving
    stopping.set()
    async with asyncio.timeout(WAIT):
        await asyncio.gather(*tasks)

    await ann.send("PUBLIC", "still here")
    for chatter in (ann, ben):
        command, message = await chatter.recv_message()
        assert (command, message["text"]) == ("PUBLIC", "still here")

    survivors = writers["g1"]
    for writer in survivors:
        assert not writer.lost
        assert writer.extra == []
        assert set(writer.replies) == set(writer.sent)  # exactly one reply each
        assert [r for r in writer.replies.values() if not r["ok"]] == []
        await writer.client.close()
    assert all(w.lost for w in writers["g2"])

    engine = create_async_engine(db_url, poolclass=NullPool)
    async with engine.connect() as conn:
        rows = dict((await conn.execute(sa.text("SELECT op, COUNT(*) FROM testkit_ops GROUP BY op"))).all())
    await engine.dispose()
    acknowledged_ops = [w.sent[i] for ws in writers.values() for w in ws for i, r in w.replies.items() if i and r["ok"]]
    assert all(op in rows for op in acknowledged_ops)  # nothing acknowledged was lost
    # testkit.record is idempotent and the message id is the request's key: a write run again elsewhere is applied once.
    assert {op: n for op, n in rows.items() if n > 1} == {}
    await ann.close()
    await ben.close()
