"""What the reliability suite drives: a real `gameserver run` on private MariaDB and Redis, a write load with a
ledger of every request and its answer, and the checks of that ledger against the database and the Maildir.

The load: a handful of players, each on its own raw TCP gate connection with one request in flight, alternating
``inventory.discard`` (one item; the reply says how many are left) and ``mail.send`` (to one recipient, a subject
naming the request). Every request is recorded with its outcome:

- ``ok``: acknowledged; its effect must be in the database or the Maildir exactly once;
- ``failed``: an error code that says nothing was done (``unavailable``, ``overloaded``, ...): its effect must be
  absent, or it was *applied but reported failed*;
- ``unknown``: no answer (the connection dropped, the server died) or a code that says it may have been applied
  (``timeout``): its effect may be there once, never twice.

An inventory discard's reply carries the count left, so each acknowledged discard pins down how many of the
requests before it were applied. The mail subject names the request, so the recipient's Maildir shows each one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import re
import signal
import subprocess
import time
from asyncio import FIRST_COMPLETED
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from gameserver.features.mailbox.message import parse
from tests.blackbox.support import GAMESERVER, READY, clean_env
from tests.clients import TcpClient
from tests.integration.private_services import PrivateMariadb, PrivateRedis, PrivateServer, free_port

START_TIMEOUT = 60.0  # guards against a server that never starts; nothing asserts on time
REQUEST_TIMEOUT = 15.0  # longer than worker.timeout: a request unanswered by then has no answer coming
PACE = 0.02  # seconds a writer waits between requests: a bounded load (about 40 requests/s per writer)
BACKOFF = 0.1  # seconds before a writer reconnects, or sends again after a failure
STOCK = 1_000_000  # items each writer starts with
ITEM = 1  # enums.ItemKind.COIN
WORLD_DIRS = "*"  # every world's folder under the mail root

# Codes that say the request did nothing (PROTOCOL.md, "Error codes"); any other code may have had effects.
NOT_APPLIED = frozenset({"unavailable", "overloaded", "rate_limited", "bad_request", "unauthorized", "forbidden"})

DOWN = 2.0  # seconds a backend stays dead under the load
HUNG = 3.0  # seconds a backend stays hung: longer than the timeouts below, so that requests run into them
# Short backend timeouts, so that a short hang is met by them (tests/integration/test_unavailable.py checks that the
# defaults answer a hang `unavailable` before the request deadline too).
TIMEOUTS = {"db.query_timeout": 1.0, "db.connect_timeout": 1.0, "redis.timeout": 1.0, "redis.connect_timeout": 1.0}


async def crash_and_restart(backend: PrivateServer) -> float:
    """kill -9, the load runs into it for a while, start again on the same port and data; the restart moment."""
    backend.kill()
    await asyncio.sleep(DOWN)
    await backend.start()
    return time.monotonic()


async def hang_and_resume(backend: PrivateServer) -> float:
    """SIGSTOP (connections stay open, nothing answers), the load runs into it, SIGCONT; the resume moment."""
    backend.freeze()
    await asyncio.sleep(HUNG)
    backend.thaw()
    return time.monotonic()


READY_LINE = re.compile(READY.pattern, re.M)  # anywhere in the log: more lines may follow it
IDEMPOTENCY_FIELD = "idem"  # the envelope's idempotency key (PROTOCOL.md, "Idempotency keys", branch modules)
TRACEBACK = re.compile(r"^Traceback \(most recent call last\):", re.M)
ERROR_LINE = re.compile(r"^\S+ \S+ ERROR ", re.M)


class Server:
    """`gameserver run` with every role on fixed free ports, so that a restart listens where clients reconnect."""

    def __init__(self, root: Path, mariadb: PrivateMariadb, redis: PrivateRedis, **settings: Any) -> None:
        self.root = root
        self.data_dir = root / "var"
        self.ports = {"gate-tcp": free_port(), "ws": free_port(), "chat-tcp": free_port(), "http": free_port()}
        self.settings: dict[str, Any] = {
            "db.url": mariadb.url("game"),
            "redis.url": redis.url(),
            "db.migrate": "upgrade",  # the schema at start-up (or once the database answers)
            "server.shutdown_grace": 5.0,
            "auth.hash_memory_kib": 8,  # argon2id at its cheapest: registering players is not what is tested
            "auth.hash_time_cost": 1,
            "modules.mail.send_rate": 1_000_000,
            "mail.max_messages": 1_000_000,
            "gate.rate": 100_000.0,
            "gate.burst": 100_000,
            "http.rate": 100_000.0,
            "http.burst": 100_000,
            "gate.max_per_address": 0,
            "chat.max_per_address": 0,
            "http.max_per_address": 0,
            **settings,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def command(self) -> list[str]:
        command = [
            *GAMESERVER,
            "run",
            "--data-dir",
            str(self.data_dir),
            "--gate-port",
            str(self.ports["gate-tcp"]),
            "--ws-port",
            str(self.ports["ws"]),
            "--chat-port",
            str(self.ports["chat-tcp"]),
            "--http-port",
            str(self.ports["http"]),
        ]
        for key, value in self.settings.items():
            command += ["--set", f"{key}={value}"]
        return command

    @property
    def log(self) -> Path:
        return self.root / f"server-{self.starts}.log"

    async def start(self) -> None:
        """Start and wait for the ready line (every listener accepts; backends may still be down)."""
        assert self.process is None or self.process.poll() is not None, "the server is running"
        self.starts += 1
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                self.command(), cwd=self.root, stdout=out, stderr=subprocess.STDOUT, env=clean_env()
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not READY_LINE.search(self.log.read_text(errors="replace")):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"gameserver did not start:\n{self.log.read_text(errors='replace')[-4000:]}")
            await asyncio.sleep(0.02)  # waiting for the line; nothing asserts on elapsed time

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None and self.process.poll() is None, "the server is not running"
        os.kill(self.process.pid, sig)

    async def wait(self, timeout: float) -> int:
        """The exit status, waiting at most ``timeout`` (a guard, then a failure)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            assert time.monotonic() < deadline, f"the server did not exit within {timeout}s"
            await asyncio.sleep(0.02)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL by PID, as a crash, and reap."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def logs(self) -> str:
        return "".join((self.root / f"server-{n}.log").read_text(errors="replace") for n in range(1, self.starts + 1))

    def tracebacks(self) -> int:
        """Tracebacks and ERROR lines in every log of this server: a handled fault logs neither."""
        text = self.logs()
        return len(TRACEBACK.findall(text)) + len(ERROR_LINE.findall(text))

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports['http']}{path}"

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            async with session.get(self.url("/healthz"), timeout=aiohttp.ClientTimeout(total=10)) as response:
                return response.status, await response.json()

    async def wait_healthy(self) -> float:
        """Poll /healthz until 200; returns the seconds it took (reported, not asserted)."""
        started = time.monotonic()
        deadline = started + START_TIMEOUT
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                if (await self.health())[0] == 200:
                    return time.monotonic() - started
            assert time.monotonic() < deadline, f"not healthy within {START_TIMEOUT}s: {self.logs()[-3000:]}"
            await asyncio.sleep(0.05)

    async def register(self, name: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session:
            body = {"username": name, "password": "correct-horse-battery"}
            async with session.post(self.url("/auth/register"), json=body) as response:
                assert response.status == 201, await response.text()
                reply = await response.json()
                return int(reply["uid"]), str(reply["token"])

    async def echo(self) -> bool:
        """True if the gate answers ``sys.echo`` on a fresh connection."""
        client = await TcpClient.open(self.ports["gate-tcp"])
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                return (await client.call("sys.echo", {"alive": 1}))["data"] == {"alive": 1}
        finally:
            await close(client)


async def close(client: TcpClient) -> None:
    client.writer.close()
    with contextlib.suppress(OSError):
        await client.writer.wait_closed()


@dataclass
class Attempt:
    """One request of one writer, in the order it sent them."""

    writer: int
    seq: int
    fn: str
    sent_at: float
    tag: str = ""
    outcome: str = "unknown"  # ok | failed | unknown
    code: str = ""
    data: Any = None
    answered_at: float = 0.0
    op: int = 0  # the intended action: a retry with an idempotency key repeats its op (0: the request's own seq)

    @property
    def action(self) -> int:
        return self.op or self.seq

    @property
    def subject(self) -> str:
        return f"{self.tag}w{self.writer}-{self.action}"

    @property
    def key(self) -> str:
        return f"{self.subject}-{self.fn}"


@dataclass
class Player:
    uid: int
    token: str


@dataclass
class Anomaly:
    kind: str  # lost | doubled | applied-but-reported-failed
    attempt: Attempt
    detail: str


@dataclass
class Ledger:
    attempts: list[Attempt] = field(default_factory=list)

    def between(self, start: float, stop: float) -> list[Attempt]:
        return [a for a in self.attempts if start <= a.sent_at < stop]

    def first_ok_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` to the first acknowledged write sent after it (a recovery time)."""
        times = [a.answered_at for a in self.attempts if a.outcome == "ok" and a.sent_at >= moment]
        return min(times) - moment if times else None


class Load:
    """``players`` writing through the gate until :meth:`stop`, each on its own connection with ``depth`` requests
    in flight (1: send, wait for the answer, send again; more: pipelined, as a client that does not wait); every
    request goes in the ledger."""

    def __init__(
        self,
        server: Server,
        players: list[Player],
        recipient: Player,
        *,
        tag: str = "",
        depth: int = 1,
        idempotent: bool = False,
    ) -> None:
        self.server = server
        self.players = players
        self.recipient = recipient
        self.tag = tag  # makes mail subjects unique across the loads of one test
        self.depth = depth
        # With idempotency keys (PROTOCOL.md, "Idempotency keys"): an action without an ok answer is sent again with
        # the same key (and subject) until it gets one, before the writer moves on, and before it stops.
        self.idempotent = idempotent
        self.retry: list[Attempt | None] = [None for _ in players]
        self.ledger = Ledger()
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.seqs = [itertools.count(1) for _ in players]

    async def __aenter__(self) -> Load:
        self.tasks = [asyncio.create_task(self._connection(n, p)) for n, p in enumerate(self.players)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.gather(*self.tasks)

    async def acknowledged(self, count: int, after: float | None = None) -> float:
        """Wait until ``count`` writes sent after ``after`` (default now) are acknowledged; the seconds from
        ``after`` to the first of them (a recovery time)."""
        moment = time.monotonic() if after is None else after
        deadline = time.monotonic() + START_TIMEOUT
        while sum(1 for a in self.ledger.attempts if a.outcome == "ok" and a.sent_at >= moment) < count:
            assert time.monotonic() < deadline, f"no {count} acknowledged writes within {START_TIMEOUT}s"
            await asyncio.sleep(0.02)
        recovery = self.ledger.first_ok_after(moment)
        assert recovery is not None
        return recovery

    def _attempt(self, number: int) -> tuple[Attempt, dict[str, Any]]:
        seq = next(self.seqs[number])
        again, self.retry[number] = self.retry[number], None
        fn = again.fn if again else "inventory.discard" if seq % 2 else "mail.send"
        attempt = Attempt(number, seq, fn, time.monotonic(), self.tag, op=again.action if again else 0)
        args = (
            {"item": ITEM, "count": 1}
            if fn == "inventory.discard"
            else {"to": self.recipient.uid, "subject": attempt.subject, "body": "reliability"}
        )
        self.ledger.attempts.append(attempt)
        message = {"id": seq, "fn": fn, "args": args, "token": self.players[number].token}
        if self.idempotent:
            message[IDEMPOTENCY_FIELD] = attempt.key
        return attempt, message

    def _running(self, number: int) -> bool:
        return not self.stopping.is_set() or (self.idempotent and self.retry[number] is not None)

    def _unanswered(self, attempt: Attempt) -> None:
        if self.idempotent and attempt.outcome != "ok":
            self.retry[attempt.writer] = attempt

    async def _connection(self, number: int, player: Player) -> None:
        """Connect (again after each loss) and keep ``depth`` requests in flight until stopped."""
        while self._running(number):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.server.ports["gate-tcp"])
            except OSError:
                await asyncio.sleep(BACKOFF)
                continue
            pending: dict[int, Attempt] = {}
            slots = asyncio.Semaphore(self.depth)
            receiving = asyncio.create_task(self._receive(reader, pending, slots))
            try:
                while self._running(number) and not receiving.done():
                    slot = asyncio.ensure_future(slots.acquire())
                    await asyncio.wait({slot, receiving}, timeout=REQUEST_TIMEOUT, return_when=FIRST_COMPLETED)
                    if not slot.done() or receiving.done():
                        slot.cancel()
                        break  # the connection is gone, or no answer came in time: connect again
                    attempt, message = self._attempt(number)
                    pending[attempt.seq] = attempt
                    body = msgpack.packb(message)
                    writer.write(len(body).to_bytes(4, "big") + body)
                    await asyncio.sleep(PACE)
                if not receiving.done():  # stopping: let the requests in flight be answered
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(REQUEST_TIMEOUT):
                            while pending and not receiving.done():
                                await asyncio.sleep(0.01)
            except (OSError, TimeoutError):
                pass
            finally:
                receiving.cancel()
                writer.close()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await writer.wait_closed()
                for attempt in pending.values():
                    self._unanswered(attempt)
            await asyncio.sleep(BACKOFF)  # requests still pending stay "unknown": no answer came

    async def _receive(
        self, reader: asyncio.StreamReader, pending: dict[int, Attempt], slots: asyncio.Semaphore
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                size = int.from_bytes(await reader.readexactly(4), "big")
                reply = msgpack.unpackb(await reader.readexactly(size), raw=False)
                attempt = pending.pop(reply.get("id"), None) if "id" in reply else None
                if attempt is None:
                    continue  # a push
                attempt.answered_at = time.monotonic()
                if reply.get("ok"):
                    attempt.outcome, attempt.data = "ok", reply["data"]
                else:
                    attempt.code = reply["error"]["code"]
                    attempt.outcome = "failed" if attempt.code in NOT_APPLIED else "unknown"
                    self._unanswered(attempt)
                    await asyncio.sleep(BACKOFF)  # do not hammer a backend that is down
                slots.release()


async def seed(mariadb: PrivateMariadb, players: Iterable[Player]) -> None:
    """Give each writer :data:`STOCK` items, straight into the database (the tables exist once the server ran):
    each load's ledger starts from there."""
    engine = create_async_engine(mariadb.url("game"), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            for player in players:
                await conn.execute(
                    sa.text(
                        "INSERT INTO inventory (uid, item, count) VALUES (:uid, :item, :count)"
                        " ON DUPLICATE KEY UPDATE count = :count"
                    ),
                    {"uid": player.uid, "item": ITEM, "count": STOCK},
                )
    finally:
        await engine.dispose()


async def inventory_counts(mariadb: PrivateMariadb) -> dict[int, int]:
    engine = create_async_engine(mariadb.url("game"), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.text("SELECT uid, count FROM inventory WHERE item = :item"), {"item": ITEM})
            return {int(uid): int(count) for uid, count in rows}
    finally:
        await engine.dispose()


def mailbox_subjects(data_dir: Path, uid: int) -> dict[str, list[str]]:
    """Subject -> mail ids of every mail in ``uid``'s Maildir (new/ and cur/), read from the files."""
    found: dict[str, list[str]] = {}
    for box in (data_dir / "mail").glob(f"{WORLD_DIRS}/{uid}"):
        for sub in ("new", "cur"):
            for path in (box / sub).iterdir() if (box / sub).is_dir() else ():
                mail = parse(path.read_bytes(), mail_id=path.name.split(":")[0])
                found.setdefault(mail.subject, []).append(mail.mail_id)
    return found


def check(
    ledger: Ledger,
    players: list[Player],
    counts: dict[int, int],
    subjects: dict[str, list[str]],
    *,
    unknown_not_applied: bool = False,
) -> list[Anomaly]:
    """Every anomaly between what the writers were told and what the database and the Maildir hold.

    Inventory: discards of one player are serialised by the row lock, so the applied ones took the count from
    :data:`STOCK` down to its final value one by one, and each acknowledged one reported its own step. So: the
    acknowledged steps are distinct and not below the final count (else one was lost or doubled), and the steps
    nobody was told about number at most the requests without an answer. ``unknown_not_applied``: a request
    without an answer must not have been applied either (a drain answers every request it read).
    """
    anomalies: list[Anomaly] = []
    for number, player in enumerate(players):
        mine = sorted((a for a in ledger.attempts if a.writer == number), key=lambda a: a.seq)
        discards = [a for a in mine if a.fn == "inventory.discard"]
        final = counts.get(player.uid, STOCK)
        acked = [a for a in discards if a.outcome == "ok"]
        steps: dict[int, Attempt] = {}
        for attempt in acked:
            step = attempt.data["count"]
            if step < final:
                anomalies.append(Anomaly("lost", attempt, f"acknowledged with {step} left, {final} in the database"))
            elif step in steps:
                anomalies.append(Anomaly("doubled", attempt, f"{step} left, as for #{steps[step].seq}"))
            steps[step] = attempt
        silent = (STOCK - final) - len(steps)  # applied but not acknowledged
        unknown = [a for a in discards if a.outcome == "unknown"]
        failed = [a for a in discards if a.outcome == "failed"]
        if silent > (0 if unknown_not_applied else len(unknown)):
            where = (unknown or failed or discards)[-1]
            kind = "applied-but-reported-failed" if silent <= len(unknown) + len(failed) else "doubled"
            anomalies.append(Anomaly(kind, where, f"{silent} applied unacknowledged, {len(unknown)} unanswered"))
        # Mail: the subject names the request.
        for attempt in (a for a in mine if a.fn == "mail.send"):
            copies = subjects.get(attempt.subject, [])
            if len(copies) > 1:
                anomalies.append(Anomaly("doubled", attempt, f"{len(copies)} mails"))
            elif attempt.outcome == "ok" and copies != [attempt.data["mail_id"]]:
                anomalies.append(Anomaly("lost", attempt, f"acknowledged mail {attempt.data['mail_id']}: {copies}"))
            elif attempt.outcome == "failed" and copies:
                anomalies.append(Anomaly("applied-but-reported-failed", attempt, f"answered {attempt.code}"))
            elif attempt.outcome == "unknown" and copies and unknown_not_applied:
                anomalies.append(Anomaly("applied-but-reported-failed", attempt, "delivered without an answer"))
    return anomalies


def check_idempotent(
    ledger: Ledger, players: list[Player], counts: dict[int, int], subjects: dict[str, list[str]]
) -> list[Anomaly]:
    """With idempotency keys every action was sent until it was acknowledged: each must be applied exactly once,
    and every acknowledgement of one action carries the same reply."""
    anomalies: list[Anomaly] = []
    for number, player in enumerate(players):
        actions: dict[int, list[Attempt]] = {}
        for attempt in (a for a in ledger.attempts if a.writer == number):
            actions.setdefault(attempt.action, []).append(attempt)
        discards = 0
        for tries in actions.values():
            acked = [a for a in tries if a.outcome == "ok"]
            last = tries[-1]
            if not acked:
                anomalies.append(Anomaly("lost", last, f"never acknowledged in {len(tries)} tries"))
                continue
            if any(a.data != acked[0].data for a in acked):
                anomalies.append(Anomaly("doubled", last, f"different replies to one key: {[a.data for a in acked]}"))
            if last.fn == "inventory.discard":
                discards += 1
            else:
                copies = subjects.get(last.subject, [])
                if copies != [acked[0].data["mail_id"]]:
                    kind = "doubled" if len(copies) > 1 else "lost"
                    anomalies.append(Anomaly(kind, last, f"acknowledged {acked[0].data['mail_id']}, found {copies}"))
        applied = STOCK - counts.get(player.uid, STOCK)
        if applied != discards:
            kind = "doubled" if applied > discards else "lost"
            where = max((tries[-1] for tries in actions.values()), key=lambda a: a.seq)
            anomalies.append(Anomaly(kind, where, f"{applied} discards applied for {discards} actions"))
    return anomalies


@contextlib.asynccontextmanager
async def backends(root: Path, *, start: bool = True) -> AsyncIterator[tuple[PrivateMariadb, PrivateRedis]]:
    """Our own mariadbd and redis-server (never the shared ones), killed by PID at the end."""
    mariadb, redis = PrivateMariadb(root / "mariadb"), PrivateRedis(root / "redis")
    try:
        if start:
            await mariadb.start()
            await mariadb.create_database("game")
            await redis.start()
        yield mariadb, redis
    finally:
        mariadb.kill()
        redis.kill()


async def players(server: Server, writers: int) -> tuple[list[Player], Player]:
    """``writers`` players and one recipient, registered over HTTP."""
    tag = random.randbytes(3).hex()
    made = [Player(*await server.register(f"w{n}x{tag}")) for n in range(writers)]
    recipient = Player(*await server.register(f"inbox{tag}"))
    return made, recipient


@dataclass
class Row:
    """One line of the suite's table: a fault (or a listener abuse) and what the server did about it."""

    scenario: str
    survived: bool = False
    sent: int = 0
    answered: int = 0
    acknowledged: int = 0
    lost: int = 0
    doubled: int = 0
    applied_failed: int = 0
    held: str = ""
    recovery: float | None = None
    tracebacks: int = 0

    def cells(self) -> list[str]:
        return [
            self.scenario,
            "yes" if self.survived else "**no**",
            f"{self.sent:,}" if self.sent else "",
            f"{self.answered:,}" if self.sent else "",
            f"{self.acknowledged:,} / {self.lost} / {self.doubled} / {self.applied_failed}" if self.sent else "",
            self.held,
            f"{self.recovery:.2f} s" if self.recovery is not None else "",
            str(self.tracebacks),
        ]


HEADER = [
    "fault",
    "survived",
    "requests sent",
    "answered",
    "writes acked / lost / doubled / applied-but-failed",
    "connections held",
    "recovery",
    "tracebacks",
]
ROWS: list[Row] = []  # filled by the tests, printed at the end of the run (conftest.py)


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    survived = sum(1 for row in rows if row.survived)
    lines.append(f"\n{len(rows)} faults injected, {survived} survived.")
    return "\n".join(lines)


def tally(row: Row, attempts: list[Attempt], anomalies: list[Anomaly]) -> Row:
    """Fill ``row``'s request and write columns from the attempts sent during its fault."""
    row.sent = len(attempts)
    row.answered = sum(1 for a in attempts if a.answered_at)
    row.acknowledged = sum(1 for a in attempts if a.outcome == "ok")
    mine = {id(a) for a in attempts}
    row.lost = sum(1 for x in anomalies if x.kind == "lost" and id(x.attempt) in mine)
    row.doubled = sum(1 for x in anomalies if x.kind == "doubled" and id(x.attempt) in mine)
    row.applied_failed = sum(1 for x in anomalies if x.kind == "applied-but-reported-failed" and id(x.attempt) in mine)
    return row
