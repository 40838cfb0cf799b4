"""The node registry on real Redis: processes see each other, a graceful stop leaves at once, a node that stops
beating drops out after its TTL, keys stay under the prefix, and a Redis that goes away and comes back gets the
entry again with one warning in between (docs/operations.md, "Node registry")."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gameserver.app import App
from gameserver.config import Config, RedisConfig
from gameserver.features.nodes.record import NodeRecord
from gameserver.features.nodes.store import NodeStore
from gameserver.keys import Keys
from gameserver.storage.kv import open_redis
from tests.clients import TcpClient, http_url
from tests.conftest import delete_prefixed, new_prefix
from tests.integration.private_services import PrivateRedis
from tests.server.support import wait_until
from tests.server.test_nodes_http import ADMIN, ADMIN_KEY, eventually, get, heartbeat_of

pytestmark = pytest.mark.integration

FAST = {"heartbeat": 0.1, "ttl": 2.0, "admin_key": ADMIN_KEY}  # 20 beats: a slow CI never misses one


@pytest.fixture
async def store(redis_url: str, redis_prefix: str) -> AsyncIterator[NodeStore]:
    """A reader of the registry under the test's prefix, as `gameserver nodes` or a lobby would be."""
    redis = open_redis(RedisConfig(url=redis_url))
    yield NodeStore(redis, Keys(redis_prefix))
    await redis.aclose()


@pytest.fixture
def on_redis(redis_url: str, redis_prefix: str) -> Callable[..., dict[str, Any]]:
    def sections(node: str, **nodes: Any) -> dict[str, Any]:
        return {
            "redis": {"url": redis_url, "prefix": redis_prefix},
            "server": {"node_id": node},
            "nodes": {**FAST, **nodes},
        }

    return sections


def names(records: list[NodeRecord]) -> list[str]:
    return [record.node for record in records]


async def test_two_apps_see_each_other_and_pick_the_less_loaded(
    app_factory: Callable[..., Any],
    on_redis: Callable[..., dict[str, Any]],
    store: NodeStore,
    client_session: aiohttp.ClientSession,
) -> None:
    a: App = await app_factory(**on_redis("node-a"))
    b: App = await app_factory(**on_redis("node-b"))
    for app in (a, b):
        status, body = await get(client_session, http_url(app, "/nodes"), headers=ADMIN)
        assert (status, [n["node"] for n in body["nodes"]]) == (200, ["node-a", "node-b"])
        assert body["nodes"][1]["addresses"]["gate-tcp"] == f"127.0.0.1:{b.ports['gate-tcp']}"
    client = await TcpClient.open(a.ports["gate-tcp"])
    try:
        await client.call("sys.echo")
        await eventually(store.live, lambda nodes: [node.load for node in nodes] == [1, 0])
        for app in (a, b):  # either node answers the same pick
            status, body = await get(client_session, http_url(app, "/nodes/pick?role=gate"))
            assert (status, body["node"]) == (200, "node-b")
    finally:
        await client.close()


async def test_a_graceful_stop_removes_the_node_at_once(
    app_factory: Callable[..., Any],
    config_factory: Callable[..., Config],
    on_redis: Callable[..., dict[str, Any]],
    store: NodeStore,
) -> None:
    await app_factory(**on_redis("stays"))
    leaving = App(config_factory(**on_redis("leaves", ttl=60.0)))  # would linger a minute if it only expired
    await leaving.start()
    assert names(await store.live()) == ["leaves", "stays"]
    await leaving.stop()
    assert names(await store.live()) == ["stays"]
    assert await store.redis.exists(store.keys.node("leaves")) == 0


async def test_a_node_that_stops_beating_drops_out_after_its_ttl(
    app_factory: Callable[..., Any], on_redis: Callable[..., dict[str, Any]], store: NodeStore
) -> None:
    await app_factory(**on_redis("alive"))
    silent: App = await app_factory(**on_redis("silent"))
    assert names(await store.live()) == ["alive", "silent"]
    assert 0 < await store.redis.pttl(store.keys.node("silent")) <= 2000
    heartbeat = heartbeat_of(silent)
    assert heartbeat.task is not None
    heartbeat.task.cancel()  # as if the process hung or were killed: no beat, no goodbye
    await eventually(store.live, lambda nodes: names(nodes) == ["alive"])
    assert await store.redis.exists(store.keys.node("silent")) == 0  # the hash expired by itself
    # and the next beat of a live node takes the dead member out of the set
    await eventually(lambda: store.redis.zrange(store.keys.nodes(), 0, -1), lambda members: members == ["alive"])


async def test_keys_carry_the_prefix_and_instances_do_not_see_each_other(
    app_factory: Callable[..., Any],
    on_redis: Callable[..., dict[str, Any]],
    redis_url: str,
    redis_prefix: str,
    store: NodeStore,
) -> None:
    await app_factory(**on_redis("mine"))
    other_prefix = new_prefix()
    try:
        other: App = await app_factory(
            redis={"url": redis_url, "prefix": other_prefix}, server={"node_id": "theirs"}, nodes=FAST
        )
        keys = [key async for key in store.redis.scan_iter(match=f"{redis_prefix}nodes*")]  # (jobs have keys too)
        assert sorted(keys) == [f"{redis_prefix}nodes", f"{redis_prefix}nodes.mine"]
        assert names(await store.live()) == ["mine"]
        assert names(await other.resources.extra["nodes"].live()) == ["theirs"]
    finally:
        await delete_prefixed(redis_url, other_prefix)


async def test_redis_down_then_back_registers_again_with_one_warning(
    config_factory: Callable[..., Config], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    redis_server = PrivateRedis(tmp_path / "redis")
    await redis_server.start()
    app = App(
        config_factory(
            redis={"url": redis_server.url(), "connect_timeout": 0.5, "timeout": 0.5},
            server={"node_id": "survivor"},
            nodes=FAST,
        )
    )
    await app.start()
    heartbeat = heartbeat_of(app)
    reader = open_redis(RedisConfig(url=redis_server.url(), connect_timeout=0.5, timeout=0.5))
    store = NodeStore(reader, app.resources.keys)
    try:
        assert names(await store.live()) == ["survivor"]
        caplog.set_level(logging.INFO, logger="gameserver.features.nodes")
        redis_server.kill()
        failures = heartbeat.failures
        await wait_until(lambda: heartbeat.failures >= failures + 3, timeout=10.0)
        warnings = [r for r in caplog.records if r.name == "gameserver.features.nodes" and r.levelno == logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]  # one line, however many beats fail
        assert "cannot write this node's entry" in warnings[0].getMessage()
        await redis_server.start()  # empty: what the node had written is gone with the old process
        await eventually(store.live, lambda nodes: names(nodes) == ["survivor"])
        assert any(
            "registered again" in r.getMessage() for r in caplog.records if r.name == "gameserver.features.nodes"
        )
        assert not heartbeat.failing
    finally:
        await reader.aclose()
        await app.stop()
        redis_server.kill()
