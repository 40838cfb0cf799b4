"""Gates and workers across the real brokers (gameserver/bus/remote.py over streams.py and nats.py): reply routing
to the gate that holds the connection, a worker's session changes reaching that gate, redelivery after a worker
stops, the gate dropping a second answer, and the bounds (overloaded, timeout, unavailable).

Each side gets its own broker clients, as separate processes would; every test runs on Redis and on NATS.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gameserver.bus.fanout import RedisFanout
from gameserver.bus.nats import NatsStreams
from gameserver.bus.remote import BusStats, Gate, Worker
from gameserver.bus.sessions import Session, Sessions
from gameserver.bus.streams import RedisStreams
from gameserver.config import RedisConfig
from gameserver.dispatch.dispatcher import Dispatcher
from gameserver.dispatch.registry import Handler, compile_entry
from gameserver.keys import Keys
from gameserver.protocol.codec import Format
from gameserver.ratelimit import TokenBucket
from gameserver.storage.kv import open_redis
from gameserver.tasks import cancel_and_wait
from tests.conftest import delete_prefixed, new_prefix, require_service
from tests.integration.private_services import PrivateNats, PrivateRedis

pytestmark = pytest.mark.integration

NATS_URL = "nats://127.0.0.1:4222"


def require_nats() -> None:
    require_service("NATS", 4222, "scripts/services (or nats-server -a 127.0.0.1 -p 4222 -js -sd DIR)")


class Client(Session):
    """A gate connection that keeps what it is sent."""

    kind = "test"

    def __init__(self, sessions: Sessions) -> None:
        super().__init__(sessions, TokenBucket(1e6, 1e6, time.monotonic()))
        self.replies: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.extra: list[dict[str, Any]] = []  # a second reply to one request (never expected)
        self.closed_with: tuple[int, str] | None = None
        self.address = ""
        self._arrived = asyncio.Event()

    @property
    def remote(self) -> str:
        return self.address

    def send(self, message: dict[str, Any], fmt: Format) -> None:
        if "event" in message:
            self.events.append(message)
        elif message["id"] in self.replies:
            self.extra.append(message)
        else:
            self.replies[message["id"]] = message
        self._arrived.set()

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed_with = (code, reason)

    async def reply(self, request_id: int) -> dict[str, Any]:
        async with asyncio.timeout(10):
            while request_id not in self.replies:
                self._arrived.clear()
                await self._arrived.wait()
        return self.replies[request_id]


@dataclass
class Handlers:
    """What the test handlers share: a gate to hold requests on, and a count of runs per message id."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    runs: dict[str, int] = field(default_factory=dict)
    running: int = 0
    most: int = 0  # running at once, at most

    def table(self) -> dict[str, Any]:
        async def add(a: int, b: int = 0) -> int:
            return a + b

        async def whoami(*, uid: int | None, session: Session) -> Any:
            return {"uid": uid, "remote": session.remote}

        async def login(player: int, *, session: Session) -> int:
            session.bind(player)
            await session.bound()
            session.push("welcome", {"uid": player})
            return player

        async def logout(*, session: Session) -> None:
            session.unbind()
            session.close(1000, "bye")

        async def hold(*, session: Session) -> str:
            mid: str = session.message_id  # type: ignore[attr-defined]
            self.runs[mid] = self.runs.get(mid, 0) + 1
            self.running += 1
            self.most = max(self.most, self.running)
            self.started.set()
            try:
                await self.release.wait()
            finally:
                self.running -= 1
            return "done"

        specs = {
            "t.add": Handler(add, login=False),
            "t.whoami": Handler(whoami, login=False),
            "t.login": Handler(login, login=False),
            "t.logout": Handler(logout, login=False),
            "t.hold": Handler(hold, login=False, timeout=30.0),
        }
        injectable = {"uid", "session", "claims", "args", "log"}
        return {
            name: compile_entry(name, spec, injectable=injectable, default_timeout=10.0) for name, spec in specs.items()
        }


class Broker:
    """Makes transports on one broker under a prefix of the test's own; closes what it made."""

    def __init__(self, kind: str, prefix: str, redis_url: str = "") -> None:
        self.kind = kind
        self.prefix = prefix
        self.redis_url = redis_url
        self.closers: list[Callable[[], Awaitable[None]]] = []

    async def transport(self, *, reclaim_after: float = 5.0, url: str = "") -> Any:
        if self.kind == "redis":
            config = RedisConfig(url=url or self.redis_url, connect_timeout=0.5, timeout=2.0)
            fanout = RedisFanout(open_redis(config, decode=False))
            await fanout.start()
            self.closers.append(fanout.close)
            return RedisStreams(
                open_redis(config, decode=False),
                fanout,
                Keys(self.prefix),
                reclaim_after=reclaim_after,
                gate_ttl=5.0,
                mid_ttl=10.0,
                block_ms=100,
            )
        return NatsStreams(
            url or NATS_URL, self.prefix.replace(":", "_").rstrip("_"), reclaim_after=reclaim_after, gate_ttl=5.0
        )

    async def gate(self, *, timeout: float = 10.0, max_inflight: int = 100, url: str = "") -> Gate:
        gate = Gate(
            await self.transport(url=url),
            node="gate",
            timeout=timeout,
            max_inflight=max_inflight,
            queue_max=10_000,
            heartbeat=0.2,
            stats=BusStats(),
        )
        await gate.start()
        self.closers.append(gate.close)
        return gate

    async def worker(
        self, handlers: Handlers, *, reclaim_after: float = 5.0, max_inflight: int = 100, url: str = ""
    ) -> Worker:
        dispatcher = Dispatcher(handlers.table(), {}, max_inflight=max_inflight, node="worker")
        worker = Worker(
            await self.transport(reclaim_after=reclaim_after, url=url),
            dispatcher,
            Sessions(),
            node="worker",
            batch=16,
            touch_every=reclaim_after / 3,
            stats=BusStats(),
        )
        await worker.start()

        async def close() -> None:
            await dispatcher.cancel_all(5.0)
            await worker.close()

        self.closers.append(close)
        return worker

    async def close(self) -> None:
        for close in reversed(self.closers):
            await close()


@pytest.fixture(params=["redis", "nats"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    prefix = new_prefix()
    if request.param == "redis":
        redis_url: str = request.getfixturevalue("redis_url")
        made = Broker("redis", prefix, redis_url)
    else:
        require_nats()
        made = Broker("nats", prefix)
    yield made
    await made.close()
    if made.kind == "redis":
        await delete_prefixed(made.redis_url, prefix)
    else:
        await _delete_nats(made.prefix.replace(":", "_").rstrip("_"))


async def _delete_nats(prefix: str) -> None:
    import nats

    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    for name in (f"{prefix}_requests", f"KV_{prefix}_gates"):
        try:
            await js.delete_stream(name)
        except Exception:
            pass
    await nc.close()


async def test_replies_go_to_the_gate_that_holds_the_connection(broker: Broker) -> None:
    handlers = Handlers()
    gates = [await broker.gate(), await broker.gate()]
    await broker.worker(handlers)
    clients = [Client(Sessions()) for _ in gates]
    for n, (gate, client) in enumerate(zip(gates, clients, strict=True)):
        client.address = f"10.0.0.{n}"
        for i in range(20):
            gate.submit({"id": i, "fn": "t.add", "args": {"a": i, "b": n * 100}}, client, Format.MSGPACK)
        gate.submit({"id": 99, "fn": "t.whoami"}, client, Format.JSON)
    for n, client in enumerate(clients):
        for i in range(20):
            assert await client.reply(i) == {"id": i, "ok": True, "data": i + n * 100}
        assert await client.reply(99) == {"id": 99, "ok": True, "data": {"uid": None, "remote": f"10.0.0.{n}"}}
        assert client.extra == []
    assert all(gate.inflight == 0 for gate in gates)


async def test_session_changes_on_a_worker_reach_the_gate(broker: Broker) -> None:
    handlers = Handlers()
    gate = await broker.gate()
    await broker.worker(handlers)
    sessions = Sessions()
    client = Client(sessions)
    gate.submit({"id": 1, "fn": "t.login", "args": {"player": 42}}, client, Format.MSGPACK)
    assert await client.reply(1) == {"id": 1, "ok": True, "data": 42}
    assert client.uid == 42 and list(sessions.of(42)) == [client]
    assert client.events == [{"event": "welcome", "data": {"uid": 42}}]
    gate.submit({"id": 2, "fn": "t.whoami"}, client, Format.MSGPACK)
    assert (await client.reply(2))["data"]["uid"] == 42  # the binding travels with the next request
    gate.submit({"id": 3, "fn": "t.logout"}, client, Format.MSGPACK)
    assert await client.reply(3) == {"id": 3, "ok": True, "data": None}
    assert client.uid is None and list(sessions.of(42)) == []
    assert client.closed_with == (1000, "bye")


async def test_a_call_abandoned_by_a_worker_is_taken_over_and_answered_once(broker: Broker) -> None:
    handlers = Handlers()
    gate = await broker.gate()
    first = await broker.worker(handlers, reclaim_after=0.3)
    client = Client(Sessions())
    gate.submit({"id": 1, "fn": "t.hold"}, client, Format.MSGPACK)
    async with asyncio.timeout(10):
        await handlers.started.wait()
    # The first worker stops as a killed process would: it takes and touches nothing more, acknowledges nothing.
    await first.stop_taking()
    await cancel_and_wait(first._tasks)  # repeated cancels: redis-py may lose one (gameserver/tasks.py)
    handlers.started.clear()
    second = await broker.worker(handlers, reclaim_after=0.3)
    async with asyncio.timeout(10):
        await handlers.started.wait()
    assert second.stats.redeliveries == 1
    handlers.release.set()  # both runs finish; the first worker's answer can no longer leave it
    assert await client.reply(1) == {"id": 1, "ok": True, "data": "done"}
    assert list(handlers.runs.values()) == [2]  # run twice, keyed by one message id: what idempotency keys on
    assert client.extra == []


async def test_a_second_answer_to_one_request_is_dropped(broker: Broker) -> None:
    handlers = Handlers()
    gate = await broker.gate()
    first = await broker.worker(handlers, reclaim_after=0.3)
    client = Client(Sessions())
    gate.submit({"id": 1, "fn": "t.hold"}, client, Format.MSGPACK)
    async with asyncio.timeout(10):
        await handlers.started.wait()
    await cancel_and_wait(first._tasks[1:])  # stop touching only: the second worker takes over from a live first one
    await first.stop_taking()
    handlers.started.clear()
    await broker.worker(handlers, reclaim_after=0.3)
    async with asyncio.timeout(10):
        await handlers.started.wait()
    handlers.release.set()  # both workers answer
    assert await client.reply(1) == {"id": 1, "ok": True, "data": "done"}
    async with asyncio.timeout(10):
        while gate.stats.duplicates < 1:
            await asyncio.sleep(0.01)
    assert client.extra == []
    assert gate.stats.duplicates == 1


async def test_a_worker_takes_no_more_than_it_may_run(broker: Broker) -> None:
    handlers = Handlers()
    gate = await broker.gate()
    client = Client(Sessions())
    for i in range(4):  # queued before the worker starts: its first fetch could take them all
        gate.submit({"id": i, "fn": "t.hold"}, client, Format.MSGPACK)
    await broker.worker(handlers, max_inflight=2)
    async with asyncio.timeout(10):
        while len(handlers.runs) < 2:
            handlers.started.clear()
            await handlers.started.wait()
    handlers.release.set()
    for i in range(4):
        assert (await client.reply(i))["data"] == "done"
    assert handlers.most == 2


async def test_past_the_deadline_the_gate_answers_timeout_and_nobody_runs_it(broker: Broker) -> None:
    handlers = Handlers()
    gate = await broker.gate(timeout=0.2)
    client = Client(Sessions())
    gate.submit({"id": 1, "fn": "t.hold"}, client, Format.MSGPACK)  # no worker yet
    reply = await client.reply(1)
    assert reply["error"]["code"] == "timeout"
    worker = await broker.worker(handlers)
    gate.submit({"id": 2, "fn": "t.add", "args": {"a": 1}}, client, Format.MSGPACK)
    assert (await client.reply(2))["data"] == 1
    assert worker.stats.expired == 1 and handlers.runs == {}


async def test_a_full_gate_answers_overloaded(broker: Broker) -> None:
    gate = await broker.gate(max_inflight=2)
    client = Client(Sessions())
    for i in range(3):
        gate.submit({"id": i, "fn": "t.add", "args": {"a": 1}}, client, Format.MSGPACK)
    assert (await client.reply(2))["error"]["code"] == "overloaded"
    assert 0 not in client.replies and 1 not in client.replies
    await broker.worker(Handlers())
    assert (await client.reply(0))["ok"] and (await client.reply(1))["ok"]


async def test_an_unreachable_broker_answers_unavailable_at_once(broker: Broker) -> None:
    url = "redis://127.0.0.1:1/0" if broker.kind == "redis" else "nats://127.0.0.1:1"
    gate = await broker.gate(url=url)
    client = Client(Sessions())
    gate.submit({"id": 1, "fn": "t.add", "args": {"a": 1}}, client, Format.MSGPACK)
    assert (await client.reply(1))["error"]["code"] == "unavailable"
    assert gate.stats.state != "up"


@pytest.mark.parametrize("kind", ["redis", "nats"])
async def test_a_broker_that_goes_down_answers_unavailable_and_comes_back(kind: str, tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path / kind) if kind == "redis" else PrivateNats(tmp_path / kind)
    await server.start()
    made = Broker(kind, new_prefix(), server.url())
    try:
        gate = await made.gate(url=server.url())
        await made.worker(Handlers(), url=server.url())
        client = Client(Sessions())
        ids = itertools.count(1)

        async def call() -> dict[str, Any]:
            request_id = next(ids)
            gate.submit({"id": request_id, "fn": "t.add", "args": {"a": request_id}}, client, Format.MSGPACK)
            return await client.reply(request_id)

        assert (await call())["ok"]
        server.kill()
        assert (await call())["error"]["code"] == "unavailable"
        assert gate.stats.state != "up"
        await server.start()  # the same port, nothing kept: the stream, group or consumer are made again
        async with asyncio.timeout(30):
            while not (reply := await call())["ok"]:
                assert reply["error"]["code"] == "unavailable"
                await asyncio.sleep(0.1)  # polling for the recovery; nothing asserts on elapsed time
        assert gate.stats.state == "up"
    finally:
        await made.close()
        server.kill()
