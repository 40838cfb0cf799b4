"""The node registry on the in-process store: a started app lists itself with its real ports, picks itself,
counts its load, and leaves the registry before its listeners stop accepting (docs/operations.md, "Node registry")."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import fakeredis
from websockets.asyncio.client import connect

from gameserver import __version__
from gameserver.app import App
from gameserver.config import Config
from gameserver.features.nodes.heartbeat import Heartbeat
from gameserver.features.nodes.store import NodeStore
from tests.clients import TcpClient, WsClient, http_url

ADMIN_KEY = "nodes-admin-key-for-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
FAST = {"heartbeat": 0.05, "ttl": 2.0, "admin_key": ADMIN_KEY}  # load shows up within a beat; nothing times

T = TypeVar("T")


def heartbeat_of(app: App) -> Heartbeat:
    """The app's registry heartbeat (its drain hook's owner)."""
    for hook in app.on_drain:
        owner = getattr(hook, "__self__", None)
        if isinstance(owner, Heartbeat):
            return owner
    raise AssertionError("no node registry heartbeat among the drain hooks")


async def eventually(fetch: Callable[[], Awaitable[T]], holds: Callable[[T], bool], timeout: float = 10.0) -> T:
    """Fetch until ``holds(value)``; fail after ``timeout`` seconds. Waits on the registry's state, not on a clock."""
    async with asyncio.timeout(timeout):
        while True:
            value = await fetch()
            if holds(value):
                return value
            await asyncio.sleep(0.02)


async def get(session: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, Any]:
    async with session.get(url, **kwargs) as response:
        return response.status, await response.json()


async def test_a_started_app_lists_itself_with_its_real_ports(
    app_factory: Callable[..., Any], client_session: aiohttp.ClientSession
) -> None:
    app: App = await app_factory(nodes={"admin_key": ADMIN_KEY})
    status, body = await get(client_session, http_url(app, "/nodes"), headers=ADMIN)
    assert status == 200
    [node] = body["nodes"]
    assert (node["node"], node["roles"], node["version"]) == ("test", list(app.roles), __version__)
    assert node["addresses"] == {name: f"127.0.0.1:{port}" for name, port in app.ports.items()}
    assert node["urls"]["ws"] == f"ws://127.0.0.1:{app.ports['ws']}"
    assert node["urls"]["gate-tcp"] == f"tcp://127.0.0.1:{app.ports['gate-tcp']}"
    assert set(node["load"]) == {"connections", "inflight", "players"}
    assert set(node["load"]["connections"]) == set(app.ports)
    assert node["heartbeat"] < node["expires"]


async def test_the_list_is_for_operators(
    app_factory: Callable[..., Any], client_session: aiohttp.ClientSession
) -> None:
    keyless: App = await app_factory()
    status, body = await get(client_session, http_url(keyless, "/nodes"))
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert "nodes.admin_key is not set" in body["error"]["message"]
    app: App = await app_factory(nodes={"admin_key": ADMIN_KEY}, server={"node_id": "keyed"})
    for headers in ({}, {"X-Admin-Key": "wrong"}):
        status, body = await get(client_session, http_url(app, "/nodes"), headers=headers)
        assert (status, body["error"]["code"]) == (401, "unauthorized")
    status, _ = await get(client_session, http_url(app, "/nodes"), headers={"X-Admin-Key": ADMIN_KEY})
    assert status == 200


async def test_role_filter(app_factory: Callable[..., Any], client_session: aiohttp.ClientSession) -> None:
    app: App = await app_factory(nodes={"admin_key": ADMIN_KEY}, server={"roles": ["auth", "worker"]})
    status, body = await get(client_session, http_url(app, "/nodes?role=worker"), headers=ADMIN)
    assert (status, [n["node"] for n in body["nodes"]]) == (200, ["test"])
    status, body = await get(client_session, http_url(app, "/nodes?role=gate"), headers=ADMIN)
    assert (status, body) == (200, {"nodes": []})
    status, body = await get(client_session, http_url(app, "/nodes?role=lobby"), headers=ADMIN)
    assert (status, body["error"]["code"]) == (400, "bad_request")
    status, body = await get(client_session, http_url(app, "/nodes/pick"))  # default role: gate
    assert (status, body["error"]) == (503, {"code": "unavailable", "message": "no live gate node"})
    status, body = await get(client_session, http_url(app, "/nodes/pick?role=auth"))
    assert (status, body["node"]) == (200, "test")


async def test_pick_gives_a_client_where_to_connect_and_nothing_internal(
    app: App, client_session: aiohttp.ClientSession
) -> None:
    status, body = await get(client_session, http_url(app, "/nodes/pick?role=gate"))
    assert status == 200
    assert set(body) == {"node", "roles", "urls"}
    ws = WsClient(await connect(body["urls"]["ws"] + "/gate"), binary=True)
    try:
        assert await ws.call("sys.echo", {"via": "pick"}) == {"id": 1, "ok": True, "data": {"via": "pick"}}
    finally:
        await ws.close()


async def test_advertised_host_and_urls(app_factory: Callable[..., Any]) -> None:
    app: App = await app_factory(
        server={"advertise_host": "game1.lan", "advertise_urls": ["ws=wss://play.example.com/n1"]}
    )
    [node] = await app.resources.extra["nodes"].live()
    assert node.addresses["gate-tcp"] == f"game1.lan:{app.ports['gate-tcp']}"
    assert node.urls["ws"] == "wss://play.example.com/n1"
    assert node.urls["http"] == f"http://game1.lan:{app.ports['http']}"


async def test_load_follows_the_connections(app_factory: Callable[..., Any]) -> None:
    app: App = await app_factory(nodes=FAST)
    store: NodeStore = app.resources.injectable()["nodes"]  # handlers get the registry as `nodes`
    client = await TcpClient.open(app.ports["gate-tcp"])
    try:
        await client.call("sys.echo")
        [node] = await eventually(store.live, lambda nodes: [n.connections["gate-tcp"] for n in nodes] == [1])
        assert node.load == 1
    finally:
        await client.close()
    await eventually(store.live, lambda nodes: [n.load for n in nodes] == [0])


async def test_a_graceful_stop_leaves_before_the_listeners_stop_accepting(
    config_factory: Callable[..., Config],
) -> None:
    app = App(config_factory(nodes=FAST))  # stopped by the test itself: not app_factory's
    await app.start()
    prefix = app.config.redis.prefix
    redis = fakeredis.FakeAsyncRedis(server=app.resources.fake_redis_server, decode_responses=True)
    assert sorted(await redis.keys("*nodes*")) == [f"{prefix}nodes", f"{prefix}nodes.test"]  # under the prefix
    seen: dict[str, Any] = {}

    async def after_leaving() -> None:  # the next drain hook: the entry is gone, the gate still accepts
        seen["entry"] = await redis.exists(f"{prefix}nodes.test")
        seen["member"] = await redis.zscore(f"{prefix}nodes", "test")
        seen["serving"] = app.listeners["gate-tcp"].server is not None and app.listeners["gate-tcp"].server.is_serving()

    app.on_drain.append(after_leaving)
    await app.stop()
    assert seen == {"entry": 0, "member": None, "serving": True}
    assert heartbeat_of(app).task is None
    await redis.aclose()
