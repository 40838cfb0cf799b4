"""The PROXY protocol on the listeners (gameserver/drivers/listener.py): a trusted proxy's header names the client,
whom the
per-address limits then count; anything else about the header closes that connection only.

The test clients connect from 127.0.0.1, which the apps here trust as their proxy (``http.trusted_proxies``), and
write the header a proxy would; 127.0.0.2 is a client that is no proxy.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage, InvalidStatus

from gameserver.app import App
from gameserver.drivers.connection import Connection
from gameserver.drivers.listener import Listener
from gameserver.errors import ConfigError
from gameserver.features.identity.nonces import issue_nonce
from gameserver.metrics import REGISTRY
from gameserver.protocol.proxy import encode_v1, encode_v2
from tests.clients import ChatClient, TcpClient, WsClient
from tests.server.support import tcp_frame, wait_until

PROXY = {"trusted_proxies": ["127.0.0.1"]}
CLIENT = ("203.0.113.7", 40001)
PASSWORD = "correct horse battery"


async def proxied_tcp(port: int, header: bytes, **kwargs: Any) -> TcpClient:
    client = await TcpClient.open(port, **kwargs)
    client.send_raw(header)
    return client


def violations(listener: str) -> float:
    """``gameserver_protocol_violations_total{listener, code="1002"}``: connections closed for their PROXY header."""
    return (
        REGISTRY.get_sample_value("gameserver_protocol_violations_total", {"listener": listener, "code": "1002"}) or 0
    )


def connection_of(listener: Listener, peer: str) -> Connection:
    (conn,) = [conn for conn in listener.connections if conn.peer == peer]
    return conn


@pytest.fixture
async def gate(app_factory: Callable[..., Any]) -> App:
    app: App = await app_factory(gate={"proxy_protocol": True, "max_per_address": 1}, http=PROXY)
    return app


@pytest.mark.parametrize("encode", [encode_v1, encode_v2], ids=["v1", "v2"])
async def test_the_header_names_the_tcp_gate_client(gate: App, encode: Callable[..., bytes]) -> None:
    port = gate.ports["gate-tcp"]
    client = await proxied_tcp(port, encode(CLIENT, ("127.0.0.1", port)))
    assert (await client.call("sys.echo", {"a": 1}))["data"] == {"a": 1}
    listener = gate.listeners["gate-tcp"]
    conn = connection_of(listener, "203.0.113.7:40001")
    assert conn.remote == "203.0.113.7" and conn.ready
    assert listener.by_address == {"203.0.113.7": 1}  # the proxy's connection counts as its client's
    await client.close()
    await wait_until(lambda: not listener.by_address)


async def test_the_header_and_the_first_frames_in_one_read(gate: App) -> None:
    client = await TcpClient.open(gate.ports["gate-tcp"])
    frames = tcp_frame({"id": 1, "fn": "sys.echo", "args": {"n": 1}}) + tcp_frame({"id": 2, "fn": "sys.echo"})
    client.send_raw(encode_v1(CLIENT, ("127.0.0.1", 1)) + frames)
    assert [(await client.recv())["id"] for _ in range(2)] == [1, 2]
    await client.close()


async def test_the_per_address_cap_counts_the_named_client(gate: App, caplog: pytest.LogCaptureFixture) -> None:
    port = gate.ports["gate-tcp"]
    first = await proxied_tcp(port, encode_v1(CLIENT, ("127.0.0.1", port)))
    assert (await first.call("sys.echo"))["ok"] is True
    with caplog.at_level(logging.WARNING, logger="gameserver.drivers.connection"):
        again = await proxied_tcp(port, encode_v2(("203.0.113.7", 40002), ("127.0.0.1", port)))
        assert await again.closed()
    assert "gate-tcp: refusing 203.0.113.7:40002: 1 connections open from 203.0.113.7" in caplog.text
    other = await proxied_tcp(port, encode_v1(("203.0.113.8", 40003), ("127.0.0.1", port)))  # its own count
    local = await proxied_tcp(port, encode_v2(None, None))  # the proxy's own health check: exempt, as the proxy
    for client in (first, other, local):
        assert (await client.call("sys.echo"))["ok"] is True
    assert gate.listeners["gate-tcp"].by_address == {"203.0.113.7": 1, "203.0.113.8": 1, "127.0.0.1": 1}
    for client in (first, again, other, local):
        await client.close()


async def test_registrations_count_the_named_client(app_factory: Callable[..., Any]) -> None:
    app = await app_factory(gate={"proxy_protocol": True}, http=PROXY, auth={"register_limit": 1})
    port = app.ports["gate-tcp"]

    async def register(client_host: str, name: str) -> str:
        client = await proxied_tcp(port, encode_v1((client_host, 1), ("127.0.0.1", port)))
        reply = await client.call("auth.register", {"username": name, "password": PASSWORD})
        await client.close()
        return "ok" if reply["ok"] else str(reply["error"]["code"])

    assert await register("198.51.100.1", "first") == "ok"
    assert await register("198.51.100.1", "second") == "rate_limited"
    assert await register("198.51.100.2", "third") == "ok"  # another player behind the same proxy


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PROXY TCP4 1.2.3.4 1.2.3.5 1 99999\r\n", "PROXY header: '99999' is not a port (0-65535)"),
        (tcp_frame({"id": 1, "fn": "sys.echo"}), "PROXY header: expected 'PROXY ' (v1) or the v2 signature"),
        (b"PROXY " + b"9" * 120, "PROXY header: v1 line longer than 107 bytes"),
    ],
    ids=["malformed", "missing", "too long"],
)
async def test_a_bad_header_closes_that_connection_only(
    gate: App, data: bytes, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = gate.ports["gate-tcp"]
    bystander = await proxied_tcp(port, encode_v1(("198.51.100.9", 1), ("127.0.0.1", port)))
    before = violations("gate-tcp")
    with caplog.at_level(logging.INFO, logger="gameserver.drivers.connection"):
        bad = await proxied_tcp(port, data)
        assert await bad.closed()
    assert f"gate-tcp: closing 127.0.0.1:{bad.writer.get_extra_info('sockname')[1]}: {message}" in caplog.text
    assert violations("gate-tcp") == before + 1
    assert (await bystander.call("sys.echo"))["ok"] is True
    for client in (bystander, bad):
        await client.close()


async def test_a_header_that_does_not_come_in_time_closes_the_connection(app_factory: Callable[..., Any]) -> None:
    app = await app_factory(gate={"proxy_protocol": True, "handshake_timeout": 0.2}, http=PROXY)
    port = app.ports["gate-tcp"]
    silent = await TcpClient.open(port)
    partial = await proxied_tcp(port, b"PROXY TCP4 203.0.113.7 ")
    assert await silent.closed() and await partial.closed()
    await silent.close()
    await partial.close()


async def test_a_client_that_is_no_proxy_connects_directly(gate: App) -> None:
    port = gate.ports["gate-tcp"]
    direct = await TcpClient.open(port, local_addr=("127.0.0.2", 0))
    assert (await direct.call("sys.echo"))["ok"] is True  # no header expected from it
    assert gate.listeners["gate-tcp"].by_address == {"127.0.0.2": 1}
    # and a header it writes is not believed: it is not a frame either, so the connection is closed
    spoof = await proxied_tcp(port, encode_v1(("198.51.100.1", 1), ("127.0.0.1", port)), local_addr=("127.0.0.3", 0))
    assert await spoof.closed()
    assert "198.51.100.1" not in gate.listeners["gate-tcp"].by_address
    await direct.close()
    await spoof.close()


async def test_the_tcp_chat_client_is_the_named_one(app_factory: Callable[..., Any]) -> None:
    app = await app_factory(chat={"proxy_protocol": True, "max_per_address": 1}, http=PROXY)
    port = app.ports["chat-tcp"]
    listener = app.listeners["chat-tcp"]

    async def chat_as(client: tuple[str, int], uid: int) -> ChatClient:
        chat = await ChatClient.tcp(port)
        await chat.send_raw(encode_v2(client, ("127.0.0.1", port)))
        identity = {"uid": uid, "name": f"p{uid}", "world": 1, "family": None}
        await chat.send("LOGIN", await issue_nonce(app.resources.redis, app.resources.keys, identity, 30))
        return chat

    first = await chat_as(CLIENT, 1)
    assert (await first.recv())[0] == "OK"
    assert connection_of(listener, "203.0.113.7:40001").remote == "203.0.113.7"
    refused = await chat_as(("203.0.113.7", 40002), 2)  # the cap counts the client, not the proxy
    assert await refused.closed()
    other = await chat_as(("203.0.113.8", 40003), 3)
    assert (await other.recv())[0] == "OK"
    for client in (first, refused, other):
        await client.close()


async def test_the_websocket_listener_behind_a_stream_proxy(app_factory: Callable[..., Any]) -> None:
    app = await app_factory(gate={"ws_proxy_protocol": True, "max_per_address": 1}, http=PROXY)
    port = app.ports["ws"]
    listener = app.listeners["ws"]

    async def ws_as(client: tuple[str, int]) -> WsClient:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(encode_v1(client, ("127.0.0.1", port)))
        return WsClient(await connect(f"ws://127.0.0.1:{port}/gate", sock=sock), binary=True)

    first = await ws_as(CLIENT)
    assert (await first.call("sys.echo"))["ok"] is True
    assert connection_of(listener, "203.0.113.7:40001").remote == "203.0.113.7"
    with pytest.raises(InvalidMessage):  # closed before the upgrade: the cap counts the client, not the proxy
        await ws_as(("203.0.113.7", 40002))
    await first.close()
    assert app.listeners["gate-tcp"].limits.proxy_protocol is False  # gate.proxy_protocol is another setting


async def test_the_proxy_protocol_without_trusted_proxies_stops_start_up(app_factory: Callable[..., Any]) -> None:
    with pytest.raises(ConfigError, match="gate-tcp: the PROXY protocol is on .* but http.trusted_proxies is empty"):
        await app_factory(gate={"proxy_protocol": True})


async def test_a_websocket_behind_an_http_proxy_counts_as_its_forwarded_client(
    app_factory: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """nginx's HTTP proxy sends no PROXY header: the handshake's X-Forwarded-For names the client, whom
    ``gate.max_per_address`` then counts; over the cap, the upgrade is refused with 503."""
    app = await app_factory(gate={"max_per_address": 1}, http=PROXY)
    port = app.ports["ws"]
    listener = app.listeners["ws"]

    async def ws_as(forwarded: str) -> WsClient:
        return await WsClient.open(port, additional_headers={"X-Forwarded-For": forwarded})

    first = await ws_as("203.0.113.7")
    assert (await first.call("sys.echo"))["ok"] is True
    assert listener.by_address == {"203.0.113.7": 1}  # counted as the client, no longer as the proxy
    with caplog.at_level(logging.WARNING, logger="gameserver.drivers.connection"):
        with pytest.raises(InvalidStatus) as refused:
            await ws_as("203.0.113.7")
    assert refused.value.response.status_code == 503
    assert "1 connections open from 203.0.113.7" in caplog.text
    other = await ws_as("203.0.113.8")  # another player behind the same proxy
    assert (await other.call("sys.echo"))["ok"] is True
    await first.close()
    await other.close()
    await wait_until(lambda: not listener.by_address)
