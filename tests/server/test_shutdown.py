"""Graceful shutdown (PROTOCOL.md, "Shutdown"): stop accepting and reading, answer what was running, close 1001."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from websockets.exceptions import ConnectionClosed

from gameserver.app import App
from gameserver.config import Config
from tests.clients import RawWebSocket, TcpClient, WsClient
from tests.fixtures.modules import PATH as FIXTURE_MODULES
from tests.server.support import wait_until

GRACE = 1.0


@pytest.fixture
async def running(config_factory: Callable[..., Config]) -> AsyncIterator[App]:
    """A started app that the test stops itself (``app_factory`` would stop it a second time)."""
    app = App(config_factory(server={"shutdown_grace": GRACE}, modules={"paths": [FIXTURE_MODULES]}))
    await app.start()
    yield app
    if not app._stopping.is_set():
        await app.stop()


async def in_flight(app: App, count: int) -> None:
    assert app.dispatcher is not None
    dispatcher = app.dispatcher
    await wait_until(lambda: dispatcher.inflight == count)


async def test_slow_request_is_answered_then_tcp_closes(running: App) -> None:
    client = await TcpClient.open(running.ports["gate-tcp"])
    client.send({"id": 1, "fn": "testkit.sleep", "args": {"seconds": 0.2}})
    await in_flight(running, 1)
    stop = asyncio.create_task(running.stop())
    assert await client.recv() == {"id": 1, "ok": True, "data": 0.2}
    assert await client.closed()
    await stop


async def test_websocket_gets_its_reply_then_1001(running: App) -> None:
    raw = await RawWebSocket.open(running.ports["ws"])
    raw.send_text(b'{"id": 1, "fn": "testkit.sleep", "args": {"seconds": 0.2}}')
    await in_flight(running, 1)
    stop = asyncio.create_task(running.stop())
    assert (await raw.recv()).data == b'{"id":1,"ok":true,"data":0.2}'
    assert await raw.close_code() == 1001
    await stop


async def test_idle_websocket_clients_get_1001(running: App) -> None:
    clients = [await WsClient.open(running.ports["ws"]) for _ in range(3)]
    for client in clients:
        assert (await client.call("sys.echo"))["ok"] is True
    await running.stop()
    for client in clients:
        with pytest.raises(ConnectionClosed):
            await client.ws.recv()
        assert client.ws.close_code == 1001


async def test_stop_returns_within_the_grace_despite_a_stuck_request(running: App) -> None:
    client = await TcpClient.open(running.ports["gate-tcp"])
    client.send({"id": 1, "fn": "testkit.sleep", "args": {"seconds": 60}})
    ws = await RawWebSocket.open(running.ports["ws"])
    await in_flight(running, 1)
    async with asyncio.timeout(GRACE + 0.5):  # the grace, and a margin for closing the resources
        await running.stop()
    assert await client.recv() == {  # it may have been applied: not `unavailable`, which says nothing was done
        "id": 1,
        "ok": False,
        "error": {
            "code": "outcome_unknown",
            "message": "the server stopped before the request finished; it may have been applied",
        },
    }
    assert await client.closed()
    assert await ws.close_code() == 1001


async def test_listeners_stop_accepting(running: App) -> None:
    port = running.ports["gate-tcp"]
    await running.stop()
    with pytest.raises(OSError):
        await TcpClient.open(port)


async def test_requests_sent_after_the_shutdown_began_are_not_run(running: App) -> None:
    client = await TcpClient.open(running.ports["gate-tcp"])
    client.send({"id": 1, "fn": "testkit.sleep", "args": {"seconds": 0.2}})
    await in_flight(running, 1)
    added = running.table["testkit.add"].stats
    before = added.ok + sum(added.errors.values())
    stop = asyncio.create_task(running.stop())
    # Reading stops once the drain hooks (the node registry's leave, ...) are done, with the dispatcher's stop_taking:
    # a request sent while those hooks still await Redis may be read and run.
    dispatcher = running.dispatcher
    assert dispatcher is not None
    await wait_until(lambda: dispatcher.stopping)
    client.send({"id": 2, "fn": "testkit.add", "args": {"a": 1}})
    assert await client.recv() == {"id": 1, "ok": True, "data": 0.2}
    assert await client.closed()  # after its last reply, with request 2 unread: never run, never answered
    await stop
    assert added.ok + sum(added.errors.values()) == before


async def test_the_drain_closes_idle_connections_at_once_and_busy_ones_after_their_reply(
    config_factory: Callable[..., Config],
) -> None:
    app = App(config_factory(server={"shutdown_grace": 30.0}, modules={"paths": [FIXTURE_MODULES]}))
    await app.start()
    busy = await TcpClient.open(app.ports["gate-tcp"])
    idle = await TcpClient.open(app.ports["gate-tcp"])
    idle_ws = await RawWebSocket.open(app.ports["ws"])
    assert (await idle.call("sys.echo"))["ok"] is True
    busy.send({"id": 1, "fn": "testkit.sleep", "args": {"seconds": 1.0}})
    await in_flight(app, 1)
    stop = asyncio.create_task(app.stop())
    assert await idle.closed()
    assert await idle_ws.close_code() == 1001
    assert app.dispatcher is not None and app.dispatcher.inflight == 1  # the busy one still runs meanwhile
    assert await busy.recv() == {"id": 1, "ok": True, "data": 1.0}
    assert await busy.closed()
    await stop


async def test_request_stop_wakes_the_waiter(running: App) -> None:
    waiter = asyncio.create_task(running.wait_stopping())
    running.request_stop()
    async with asyncio.timeout(5):
        await waiter
    await running.stop()
