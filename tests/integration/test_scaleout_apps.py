"""Roles in separate apps (issue 13): a gate without a worker and a worker without a gate in this loop share the
real Redis (and NATS for ``server.bus = "nats"``), one SQLite database and one mail root, as two processes of one
deployment would. A client on the gate logs in (the worker binds the gate's connection), calls, and gets the pushes
the worker sends; ``/healthz`` shows the bus and ``/nodes`` both roles."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from gameserver.app import App
from gameserver.bus.nats import subject_prefix
from gameserver.bus.remote import GateBus
from tests.clients import TcpClient, WsClient
from tests.conftest import delete_prefixed
from tests.integration.test_remote_bus import NATS_URL, require_nats

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


@pytest.fixture(params=["redis", "nats"])
async def apps(
    request: pytest.FixtureRequest, app_factory: Callable[..., Awaitable[App]], redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[App, App]]:
    if request.param == "nats":
        require_nats()
    prefix = f"test:scaleout:{uuid.uuid4().hex}:"
    shared = {
        "redis": {"url": redis_url, "prefix": prefix},
        "db": {"url": f"sqlite+aiosqlite:///{tmp_path / 'game.db'}"},
        "mail": {"root": str(tmp_path / "mail")},
        "auth": {"secret": "s" * 48, "single_session": True},
        "remote": {"nats_url": NATS_URL},
    }
    bus = {"bus": request.param}
    worker = await app_factory(
        server={"node_id": "w", "roles": ["worker", "auth"], "data_dir": str(tmp_path / "w"), **bus}, **shared
    )
    gate = await app_factory(
        server={"node_id": "g", "roles": ["gate"], "data_dir": str(tmp_path / "g"), **bus}, **shared
    )
    yield gate, worker
    await delete_prefixed(redis_url, prefix)
    if request.param == "nats":
        import nats

        nc = await nats.connect(NATS_URL)
        for name in (f"{subject_prefix(prefix)}_requests", f"KV_{subject_prefix(prefix)}_gates"):
            await nc.jetstream().delete_stream(name)
        await nc.close()


async def test_a_gate_without_a_worker_serves_through_a_remote_worker(apps: tuple[App, App]) -> None:
    gate, worker = apps
    assert isinstance(gate.resources.bus, GateBus) and gate.dispatcher is None and worker.worker is not None
    alice = await TcpClient.open(gate.ports["gate-tcp"])
    bob = await WsClient.open(gate.ports["ws"], binary=False)
    try:
        assert (await alice.call("sys.echo", {"x": [1, 2]}))["data"] == {"x": [1, 2]}
        registered = await alice.call("auth.register", {"username": "alice", "password": PASSWORD})
        assert registered["ok"], registered
        uid = registered["data"]["uid"]
        assert (await bob.call("auth.register", {"username": "bob", "password": PASSWORD}))["ok"]
        # The login ran on the worker and bound the gate's connection: alice's pushes reach her here.
        [session] = gate.resources.sessions.of(uid)
        assert session.uid == uid
        sent = await bob.call("mail.send", {"to": uid, "subject": "hi", "body": "hello"})
        assert sent["ok"], sent
        push = await alice.recv()
        assert push["event"] == "mail.new" and push["data"]["subject"] == "hi"
        listed = await alice.call("mail.list")  # no token: the gate's binding travels with the request
        assert [m["subject"] for m in listed["data"]["mails"]] == ["hi"]
    finally:
        await alice.close()
        await bob.close()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{gate.ports['http']}/healthz") as response:
            health = await response.json()
        async with http.get(f"http://127.0.0.1:{gate.ports['http']}/metrics") as response:
            exported = await response.text()
    assert health["checks"]["bus"] == "ok"
    assert health["bus"]["backend"] == gate.config.bus_backend and health["bus"]["state"] == "up"
    assert "gameserver_bus_up 1.0" in exported and 'gameserver_bus_requests_total{outcome="sent"}' in exported
    nodes = await gate.resources.extra["nodes"].live()
    assert {(n.node, n.roles) for n in nodes} == {("g", ("gate",)), ("w", ("worker", "auth"))}


async def test_a_second_login_replaces_the_first_connection_not_itself(apps: tuple[App, App]) -> None:
    """auth.single_session from a remote worker: its broadcast closes the player's older connection on the gate, and
    the connection just bound there stays (the bind reached the gate with it, whatever came first)."""
    gate, _ = apps
    first = await TcpClient.open(gate.ports["gate-tcp"])
    second = await TcpClient.open(gate.ports["gate-tcp"])
    try:
        assert (await first.call("auth.register", {"username": "carol", "password": PASSWORD}))["ok"]
        assert (await second.call("auth.login", {"username": "carol", "password": PASSWORD}))["ok"]
        assert (await first.recv())["event"] == "session.replaced"
        assert await first.closed()
        assert (await second.call("sys.echo", {"still": "here"}))["data"] == {"still": "here"}
    finally:
        await first.close()
        await second.close()
