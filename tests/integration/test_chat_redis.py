"""The chat edge across processes: two apps in this loop share the real Redis (a unique key prefix each test)
and fan out through Redis pub/sub (``server.bus = "auto"`` with ``redis.url`` set)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio

from gameserver.app import App
from gameserver.bus.fanout import RedisFanout
from gameserver.features.chatedge import Chat
from gameserver.features.identity.nonces import issue_nonce
from tests.clients import ChatClient, http_url
from tests.integration.private_services import PrivateRedis

pytestmark = pytest.mark.integration

KINDS = ("tcp", "ws")
_uids = itertools.count(5000)
Edges = tuple[App, App]


@pytest.fixture
async def settings(redis_url: str, tmp_path: Path) -> Callable[[str], dict[str, Any]]:
    prefix = f"test:chat:{uuid.uuid4().hex}:"

    def make(name: str, **server: Any) -> dict[str, Any]:
        return {
            "server": {"node_id": name, "data_dir": str(tmp_path / name), **server},
            "redis": {"url": redis_url, "prefix": prefix},
            "chat": {"tcp_port": 0, "rate": 1e6, "burst": 10**6},
        }

    return make


@pytest.fixture
async def edges(app_factory: Callable[..., Awaitable[App]], settings: Callable[..., dict[str, Any]]) -> Edges:
    a = await app_factory(**settings("edge-a"))
    b = await app_factory(**settings("edge-b"))
    for app in (a, b):
        assert isinstance(app.resources.extra["chat"].bus, RedisFanout)
    return a, b


async def login(app: App, kind: str, *, uid: int | None = None, world: Any = 1, family: Any = None) -> ChatClient:
    uid = next(_uids) if uid is None else uid
    nonce = await issue_nonce(
        app.resources.redis, app.resources.keys, {"uid": uid, "name": f"p{uid}", "world": world, "family": family}, 30
    )
    client = await (ChatClient.websocket(app.ports["ws"]) if kind == "ws" else ChatClient.tcp(app.ports["chat-tcp"]))
    assert (await client.login(nonce))["uid"] == uid
    client.uid = uid  # type: ignore[attr-defined]
    return client


async def assert_nothing_before_pong(client: ChatClient) -> None:
    await client.send("PING")
    assert await client.recv() == ("PONG", "")


@pytest.mark.parametrize(("first", "second"), list(itertools.product(KINDS, KINDS)))
async def test_public_across_processes(edges: Edges, first: str, second: str) -> None:
    a, b = edges
    on_a, on_b = await login(a, first), await login(b, second)
    await on_a.send("PUBLIC", "from a")
    for client in (on_a, on_b):
        command, message = await client.recv_message()
        assert (command, message["uid"], message["text"]) == ("PUBLIC", on_a.uid, "from a")  # type: ignore[attr-defined]
    await on_b.send("PUBLIC", "from b")
    for client in (on_a, on_b):
        assert (await client.recv_message())[1]["text"] == "from b"


async def test_messages_keep_their_order_across_processes(edges: Edges) -> None:
    a, b = edges
    sender, receiver = await login(a, "tcp"), await login(b, "ws")
    for n in range(200):
        await sender.send("PUBLIC", str(n))
    assert [(await receiver.recv_message())[1]["text"] for _ in range(200)] == [str(n) for n in range(200)]


async def test_families_across_processes(edges: Edges) -> None:
    a, b = edges
    seven_a, seven_b = await login(a, "tcp", family=7), await login(b, "ws", family=7)
    eight_b = await login(b, "tcp", family=8)
    seven_other_world = await login(b, "tcp", world=2, family=7)
    await seven_a.send("FAMILY", "sevens")
    for client in (seven_a, seven_b):
        command, message = await client.recv_message()
        assert (command, message["text"]) == ("FAMILY", "sevens")
    # edge b got the message (seven_b has it): a wrong member there would have had it in the same step
    for client in (eight_b, seven_other_world):
        await assert_nothing_before_pong(client)


async def probe_family(client: ChatClient, attempts: int = 2000) -> None:
    """Send FAMILY until the server has moved the client into a family: its own probe comes back."""
    for n in range(attempts):
        await client.send("FAMILY", f"probe {n}")
        command, payload = await client.recv()
        if (command, payload) == ("ERROR", "not_in_family"):
            continue
        assert command == "FAMILY" and f'"probe {n}"' in payload, (command, payload)
        return
    raise AssertionError("the family move never arrived")


async def test_set_family_moves_a_player_on_another_process(edges: Edges) -> None:
    a, b = edges
    player = await login(b, "ws")
    member_on_a = await login(a, "tcp", family=3)
    await a.resources.extra["chat"].set_family(player.uid, 1, 3)  # type: ignore[attr-defined]
    await probe_family(player)
    while True:  # the probes reached family 3 on edge a too
        command, message = await member_on_a.recv_message()
        if message["uid"] == player.uid:  # type: ignore[attr-defined]
            break
    await member_on_a.send("FAMILY", "welcome")
    while (await player.recv_message())[1]["text"] != "welcome":
        pass


async def test_system_message_from_a_worker_process(
    edges: Edges, app_factory: Callable[..., Awaitable[App]], settings: Callable[..., dict[str, Any]]
) -> None:
    a, b = edges
    worker = await app_factory(**settings("worker", roles=["worker"]))
    chat: Chat = worker.resources.extra["chat"]
    assert "chat-tcp" not in worker.ports
    clients = [await login(a, "tcp"), await login(b, "ws")]
    await chat.system(1, "maintenance at noon")
    for client in clients:
        command, message = await client.recv_message()
        assert (command, message["uid"], message["text"]) == ("PUBLIC", 0, "maintenance at noon")


async def test_a_nonce_redeemed_on_one_process_is_refused_on_the_other(edges: Edges) -> None:
    a, b = edges
    keys = a.resources.keys
    nonce = await issue_nonce(a.resources.redis, keys, {"uid": 1, "name": "x", "world": 1, "family": None}, 30)
    first = await ChatClient.tcp(a.ports["chat-tcp"])
    assert (await first.login(nonce))["uid"] == 1
    replay = await ChatClient.websocket(b.ports["ws"])
    await replay.send("LOGIN", nonce)
    assert await replay.closed()


async def test_one_subscription_per_process_dropped_with_the_last_member(edges: Edges, redis_url: str) -> None:
    a, b = edges
    channel = a.resources.keys.chat_public(1)
    on_a = [await login(a, "tcp"), await login(a, "ws")]
    on_b = await login(b, "tcp")
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        assert await client.pubsub_numsub(channel) == [(channel.encode(), 2)]
        await on_b.close()
        async with asyncio.timeout(5):
            while await client.pubsub_numsub(channel) != [(channel.encode(), 1)]:
                await asyncio.sleep(0.01)
        for member in on_a:
            await member.close()
        async with asyncio.timeout(5):
            while await client.pubsub_numsub(channel) != [(channel.encode(), 0)]:
                await asyncio.sleep(0.01)
    finally:
        await client.aclose()


async def test_a_dropped_subscriber_connection_is_restored(edges: Edges, redis_url: str) -> None:
    a, b = edges
    on_a, on_b = await login(a, "tcp"), await login(b, "ws")
    channel = a.resources.keys.chat_public(1)
    fanout: RedisFanout = b.resources.extra["chat"].bus
    assert fanout._pubsub.connection is not None
    host, port = fanout._pubsub.connection._writer.get_extra_info("sockname")[:2]  # type: ignore[union-attr]
    admin = redis.asyncio.Redis.from_url(redis_url)
    try:
        await admin.client_kill(f"{host}:{port}")  # only edge b's subscriber connection
        assert await admin.pubsub_numsub(channel) == [(channel.encode(), 1)]
        async with asyncio.timeout(10):
            while await admin.pubsub_numsub(channel) != [(channel.encode(), 2)]:
                await asyncio.sleep(0.01)
    finally:
        await admin.aclose()
    await on_a.send("PUBLIC", "after the reconnect")
    assert (await on_b.recv_message())[1]["text"] == "after the reconnect"


PUBLISH_FAILED = "gameserver_chat_publish_failed_total"


async def publish_failed_total(http: aiohttp.ClientSession, app: App) -> float:
    """The app's ``gameserver_chat_publish_failed_total``, scraped from ``GET /metrics``."""
    async with http.get(http_url(app, "/metrics")) as response:
        metrics = await response.text()
    [value] = [line.split()[1] for line in metrics.splitlines() if line.startswith(PUBLISH_FAILED + " ")]
    return float(value)


async def test_lines_published_while_redis_is_down_are_counted_and_logged_sparingly(
    app_factory: Callable[..., Awaitable[App]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Our own redis-server (never the shared one), killed under a chat edge: every line published while it is
    down is lost, counted in gameserver_chat_publish_failed_total, and reported in one warning, not one per
    line; once it is back the edge publishes again and says how many went unreported."""
    server = PrivateRedis(tmp_path / "redis")
    await server.start()
    admin = redis.asyncio.Redis.from_url(server.url())
    lost = 25
    try:
        app = await app_factory(
            server={"node_id": "edge", "data_dir": str(tmp_path / "edge")},
            redis={"url": server.url(), "prefix": "test:chat:down:", "connect_timeout": 2.0},
            chat={"tcp_port": 0, "rate": 1e6, "burst": 10**6},
        )
        client = await login(app, "tcp")
        await client.send("PUBLIC", "before")
        assert (await client.recv_message())[1]["text"] == "before"
        async with aiohttp.ClientSession() as http:
            before = await publish_failed_total(http, app)

            caplog.set_level(logging.INFO, logger="gameserver.bus.fanout")
            server.kill()
            for n in range(lost):
                await client.send("PUBLIC", f"lost {n}")
            await assert_nothing_before_pong(client)  # every line was read and published (and lost)
            async with asyncio.timeout(10):
                while await publish_failed_total(http, app) < before + lost:
                    await asyncio.sleep(0.01)
            assert await publish_failed_total(http, app) == before + lost

        warnings = [r for r in caplog.records if r.msg.startswith("fan-out: %d messages lost")]
        assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING  # not one line per lost message
        reported = warnings[0].args[0]  # type: ignore[index]
        assert 1 <= reported <= lost

        await server.start()  # same port: the edge reconnects and restores its subscriptions
        channel = app.resources.keys.chat_public(1)
        async with asyncio.timeout(10):
            while await admin.pubsub_numsub(channel) != [(channel.encode(), 1)]:
                await asyncio.sleep(0.01)
        await client.send("PUBLIC", "after")
        assert (await client.recv_message())[1]["text"] == "after"  # none of the lost lines ever arrives
        [again] = [r for r in caplog.records if r.msg.startswith("fan-out: publishing again")]
        assert again.args == (lost - reported,)
        await client.close()
    finally:
        await admin.aclose()
        server.kill()
