"""Graceful shutdown (PROTOCOL.md, "Shutdown"): stop accepting, answer what was received, close 1001."""

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
    assert await client.recv() == {
        "id": 1,
        "ok": False,
        "error": {"code": "unavailable", "message": "the server is shutting down"},
    }
    assert await client.closed()
    assert await ws.close_code() == 1001


async def test_listeners_stop_accepting(running: App) -> None:
    port = running.ports["gate-tcp"]
    await running.stop()
    with pytest.raises(OSError):
        await TcpClient.open(port)


async def test_requests_received_while_draining_are_answered(running: App) -> None:
    client = await TcpClient.open(running.ports["gate-tcp"])
    client.send({"id": 1, "fn": "testkit.sleep", "args": {"seconds": 0.2}})
    await in_flight(running, 1)
    stop = asyncio.create_task(running.stop())
    await wait_until(lambda: running._stopping.is_set())
    client.send({"id": 2, "fn": "sys.echo", "args": {"late": True}})
    replies = [await client.recv(), await client.recv()]
    assert sorted(reply["id"] for reply in replies) == [1, 2]
    assert await client.closed()
    await stop


async def test_request_stop_wakes_the_waiter(running: App) -> None:
    waiter = asyncio.create_task(running.wait_stopping())
    running.request_stop()
    async with asyncio.timeout(5):
        await waiter
    await running.stop()
