"""Per-address limits through real sockets: the client address behind a trusted proxy (``http.trusted_proxies``)
on HTTP and the WebSocket gate, and the registration limit (``auth.register_limit``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from gameserver.app import App
from tests.clients import TcpClient, WsClient, http_url

PASSWORD = "correct horse battery"
LOCAL = ["127.0.0.1"]  # the test clients connect from here: the "proxy"


async def post(
    session: aiohttp.ClientSession, app: App, path: str, body: dict[str, Any], forwarded: str | None = None
) -> tuple[int, Any, Any]:
    headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
    async with session.post(http_url(app, path), json=body, headers=headers) as response:
        return response.status, await response.json(), response.headers


async def ws_as(app: App, forwarded: str) -> WsClient:
    return await WsClient.open(app.ports["ws"], additional_headers={"X-Forwarded-For": forwarded})


async def fail_login(client: WsClient) -> str:
    reply = await client.call("auth.login", {"username": "nobody", "password": PASSWORD})
    return str(reply["error"]["code"])


# Failed logins: counted per forwarded client


async def test_http_counts_failures_per_forwarded_client(
    app_factory: Callable[..., Any], client_session: aiohttp.ClientSession
) -> None:
    app = await app_factory(http={"trusted_proxies": LOCAL}, auth={"max_failures_addr": 2})
    wrong = {"username": "nobody", "password": PASSWORD}
    for _ in range(2):
        assert (await post(client_session, app, "/auth/login", wrong, "198.51.100.1"))[0] == 401
    status, body, headers = await post(client_session, app, "/auth/login", wrong, "198.51.100.1")
    assert (status, body["error"]["code"]) == (429, "rate_limited") and int(headers["Retry-After"]) > 0
    # another player behind the same proxy is not throttled with the first
    assert (await post(client_session, app, "/auth/login", wrong, "198.51.100.2"))[0] == 401
    # a client that writes its own header in front: the proxy appended the real address on the right
    assert (await post(client_session, app, "/auth/login", wrong, "198.51.100.2, 198.51.100.1"))[0] == 429
    # a malformed header counts against the proxy itself, never against a value the client chose
    for _ in range(2):
        assert (await post(client_session, app, "/auth/login", wrong, "garbage"))[0] == 401
    assert (await post(client_session, app, "/auth/login", wrong))[0] == 429  # 127.0.0.1: at its limit


async def test_http_ignores_the_header_from_untrusted_peers(
    app_factory: Callable[..., Any], client_session: aiohttp.ClientSession
) -> None:
    app = await app_factory(auth={"max_failures_addr": 2})  # trusted_proxies = []: nobody
    wrong = {"username": "nobody", "password": PASSWORD}
    for forwarded in ("198.51.100.1", "198.51.100.2"):
        assert (await post(client_session, app, "/auth/login", wrong, forwarded))[0] == 401
    assert (await post(client_session, app, "/auth/login", wrong, "198.51.100.3"))[0] == 429


async def test_websocket_gate_counts_failures_per_forwarded_client(app_factory: Callable[..., Any]) -> None:
    app = await app_factory(http={"trusted_proxies": LOCAL}, auth={"max_failures_addr": 2})
    first = await ws_as(app, "203.0.113.7")
    assert [await fail_login(first) for _ in range(3)] == ["wrong_credentials", "wrong_credentials", "rate_limited"]
    second = await ws_as(app, "203.0.113.8")
    assert await fail_login(second) == "wrong_credentials"
    # raw TCP carries no header: the gate's TCP clients count as their TCP peer
    tcp = await TcpClient.open(app.ports["gate-tcp"])
    assert (await tcp.call("auth.login", {"username": "x", "password": PASSWORD}))["error"]["code"] == (
        "wrong_credentials"
    )
    for client in (first, second):
        await client.close()
    await tcp.close()


async def test_websocket_ignores_the_header_from_untrusted_peers(app_factory: Callable[..., Any]) -> None:
    app = await app_factory(auth={"max_failures_addr": 2})
    codes = []
    for forwarded in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        client = await ws_as(app, forwarded)
        codes.append(await fail_login(client))
        await client.close()
    assert codes == ["wrong_credentials", "wrong_credentials", "rate_limited"]


# Registrations per address


async def test_registrations_per_address(
    app_factory: Callable[..., Any], client_session: aiohttp.ClientSession
) -> None:
    app = await app_factory(http={"trusted_proxies": LOCAL}, auth={"register_limit": 2, "register_window": 60.0})

    async def register(name: str, forwarded: str) -> tuple[int, Any, Any]:
        return await post(client_session, app, "/auth/register", {"username": name, "password": PASSWORD}, forwarded)

    assert (await register("reg1", "198.51.100.1"))[0] == 201
    assert (await register("reg1", "198.51.100.1"))[0] == 409  # a taken name counts too: no free name probing
    status, body, headers = await register("reg2", "198.51.100.1")
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    assert 0 < int(headers["Retry-After"]) <= 60
    assert body["error"]["message"] == "too many registrations from this address; try again later"
    assert (await post(client_session, app, "/auth/register", {"username": "r", "password": ""}, "198.51.100.1"))[
        0
    ] == 400  # bad input is answered before the limit: it creates nothing
    # the gate shares the count (the WebSocket handshake's forwarded address)
    gate = await ws_as(app, "198.51.100.1")
    reply = await gate.call("auth.register", {"username": "reg3", "password": PASSWORD})
    assert reply["error"]["code"] == "rate_limited"
    assert (await gate.call("session.bind", {"token": "x"}))["error"]["code"] == "unauthorized"  # nothing bound
    other = await ws_as(app, "198.51.100.2")
    assert (await other.call("auth.register", {"username": "reg3", "password": PASSWORD}))["ok"]
    assert (await register("reg4", "198.51.100.2"))[0] == 201
    assert (await register("reg5", "198.51.100.2"))[0] == 429
    # logins are not registrations
    assert (await post(client_session, app, "/auth/login", {"username": "reg1", "password": PASSWORD}))[0] == 200
    for client in (gate, other):
        await client.close()
