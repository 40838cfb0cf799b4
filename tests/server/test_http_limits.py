"""The HTTP listener's size, rate and time limits, through real sockets (gameserver/drivers/http.py): the connection
cap,
the per-address request rate, the time to a complete request head and a route's deadline."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gameserver.app import App
from gameserver.config import Config
from gameserver.drivers.http import timeout
from tests.clients import close_writer, http_url
from tests.server.support import wait_until

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n"


class RawHttp:
    """One keep-alive connection, written and read by hand: half a request head is as easy as a whole one."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, app: App, **kwargs: Any) -> RawHttp:
        """``kwargs`` go to :func:`asyncio.open_connection`: ``local_addr=("127.0.0.2", 0)`` is another client."""
        return cls(*await asyncio.open_connection("127.0.0.1", app.ports["http"], **kwargs))

    async def request(self, head: bytes = HEALTHZ) -> tuple[int, bytes]:
        self.writer.write(head)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    async def closed(self) -> bool:
        """True once the server closed the connection (EOF or a reset)."""
        async with asyncio.timeout(5):
            try:
                while await self.reader.read(4096):
                    pass
            except ConnectionError:
                pass
        return True

    async def close(self) -> None:
        await close_writer(self.writer)


def connections_gauge(metrics: bytes) -> float:
    match = re.search(rb'^gameserver_connections\{listener="http"\} (\S+)$', metrics, re.M)
    assert match is not None
    return float(match.group(1))


async def test_connections_over_the_cap_are_closed_at_accept(
    app_factory: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    app: App = await app_factory(http={"max_connections": 3})
    assert app.http is not None
    listener = app.http
    clients = [await RawHttp.open(app) for _ in range(3)]
    await wait_until(lambda: len(listener.connections) == 3)
    with caplog.at_level(logging.WARNING, logger="gameserver.drivers.connection"):
        extra = [await RawHttp.open(app) for _ in range(2)]
        for client in extra:
            assert await client.closed()
    refusals = [r.getMessage() for r in caplog.records if "refusing" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].startswith("http: refusing 127.0.0.1:")  # one line a second at most
    for client in clients:
        status, body = await client.request()
        assert status == 200 and b'"http": 3' in body  # /healthz counts the HTTP connections too
    status, metrics = await clients[0].request(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
    assert status == 200 and connections_gauge(metrics) == 3
    await clients.pop().close()
    await wait_until(lambda: len(listener.connections) == 2)
    again = await RawHttp.open(app)  # room again
    assert (await again.request())[0] == 200
    for client in [*clients, *extra, again]:
        await client.close()


async def test_connections_over_the_per_address_cap_are_closed_at_accept(
    app_factory: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    app: App = await app_factory(http={"max_per_address": 2})
    assert app.http is not None
    counts = app.http.addresses.open
    clients = [await RawHttp.open(app) for _ in range(2)]
    await wait_until(lambda: counts == {"127.0.0.1": 2})
    with caplog.at_level(logging.WARNING, logger="gameserver.drivers.connection"):
        refused = await RawHttp.open(app)
        assert await refused.closed()
    assert "http: refusing 127.0.0.1:" in caplog.text and "2 connections open from 127.0.0.1" in caplog.text
    other = await RawHttp.open(app, local_addr=("127.0.0.2", 0))  # another client: its own count
    for client in [*clients, other]:
        assert (await client.request())[0] == 200
    await clients.pop().close()
    await wait_until(lambda: counts.get("127.0.0.1") == 1)
    again = await RawHttp.open(app)  # a slot of that address is free again
    assert (await again.request())[0] == 200
    for client in [*clients, other, again, refused]:
        await client.close()
    await wait_until(lambda: not counts)  # nothing kept for addresses that left


async def test_a_trusted_proxy_is_not_capped_per_address(app_factory: Callable[..., Any]) -> None:
    app: App = await app_factory(http={"max_per_address": 1, "trusted_proxies": ["127.0.0.1"]})
    clients = [await RawHttp.open(app) for _ in range(3)]  # nginx's upstream connections: many players
    for client in clients:
        assert (await client.request())[0] == 200
        await client.close()


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", "Got more than 8190 bytes"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", "Got more than 8190 bytes"),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)) + b"\r\n", "Too many headers"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64), "Received HTTPS traffic"),
    ],
    ids=["long header", "long request line", "too many headers", "not HTTP"],
)
async def test_aiohttps_own_refusals_are_json_and_logged_without_a_traceback(
    app: App, head: bytes, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = await RawHttp.open(app)
    client.writer.write(head)
    with caplog.at_level(logging.INFO):
        response = await client.reader.read()  # aiohttp answers, then closes
    assert [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info] == []
    if message != "Received HTTPS traffic":  # aiohttp logs that one itself, at DEBUG
        assert "http: bad request from 127.0.0.1 answered 400: " + message in caplog.text
    status_line, _, rest = response.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert status_line.split()[1] == b"400"
    assert b"content-type: application/json" in headers.lower()
    error = json.loads(body)["error"]
    assert error["code"] == "bad_request" and error["message"].startswith(message)
    await client.close()


async def test_an_address_over_its_rate_gets_429_and_others_do_not(
    app_factory: Callable[..., Any], client_session: aiohttp.ClientSession
) -> None:
    app = await app_factory(http={"rate": 0.5, "burst": 3, "trusted_proxies": ["127.0.0.1"]})
    for _ in range(3):
        async with client_session.get(http_url(app, "/healthz")) as response:
            assert response.status == 200
    async with client_session.get(http_url(app, "/healthz")) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "2"  # one token back at 0.5 a second
        body = await response.json()
    assert body["error"]["code"] == "rate_limited"
    assert body["error"]["message"] == "too many requests from this address; slow down"
    async with client_session.get(http_url(app, "/healthz"), headers={"X-Forwarded-For": "203.0.113.7"}) as response:
        assert response.status == 200  # another player behind the same proxy: their own bucket
    async with client_session.get(http_url(app, "/nope")) as response:
        assert response.status == 429  # every route counts, known or not


async def test_a_normal_client_is_never_throttled_by_the_defaults(
    app: App, config_factory: Callable[..., Config], client_session: aiohttp.ClientSession
) -> None:
    defaults = config_factory().http
    assert (defaults.rate, defaults.burst) == (100.0, 500)  # make_config leaves them as shipped
    statuses = []
    for _ in range(300):  # one after the other, as fast as they go: faster than a console or a scraper
        async with client_session.get(http_url(app, "/healthz")) as response:
            statuses.append(response.status)
    assert set(statuses) == {200}


async def test_a_request_head_that_never_ends_is_closed(app_factory: Callable[..., Any]) -> None:
    app: App = await app_factory(http={"header_timeout": 0.3})
    slow = await RawHttp.open(app)
    slow.writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")  # half a head...
    trickle = asyncio.create_task(trickle_headers(slow.writer))  # ... and then a header now and then, forever
    other = await RawHttp.open(app)
    assert (await other.request())[0] == 200  # served meanwhile
    assert await slow.closed()
    trickle.cancel()
    silent = await RawHttp.open(app)  # a connection that sends nothing at all goes the same way
    assert await silent.closed()
    for client in (slow, other, silent):
        await client.close()


async def trickle_headers(writer: asyncio.StreamWriter) -> None:
    for i in range(1000):
        await asyncio.sleep(0.05)
        writer.write(f"X-Slow-{i}: y\r\n".encode())


async def test_a_kept_alive_connection_serves_requests_within_the_header_timeout(
    app_factory: Callable[..., Any],
) -> None:
    app: App = await app_factory(http={"header_timeout": 0.5})
    client = await RawHttp.open(app)
    for _ in range(3):
        assert (await client.request())[0] == 200
    await client.close()


@pytest.fixture
async def app_with_slow_routes(config_factory: Callable[..., Config]) -> AsyncIterator[App]:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query["seconds"]))
        return web.json_response({"slept": True})

    @timeout(None)
    async def unbounded(request: web.Request) -> web.Response:
        return await slow(request)

    app = App(config_factory(http={"handler_timeout": 0.2}))
    app.http_routes += [web.get("/test/slow", slow), web.get("/test/unbounded", unbounded)]
    await app.start()
    yield app
    await app.stop()


async def test_a_route_past_its_deadline_answers_504(
    app_with_slow_routes: App, client_session: aiohttp.ClientSession
) -> None:
    app = app_with_slow_routes
    async with client_session.get(http_url(app, "/test/slow?seconds=30")) as response:
        assert response.status == 504
        assert await response.json() == {"error": {"code": "timeout", "message": "no answer within 0.2s"}}
    async with client_session.get(http_url(app, "/test/slow?seconds=0")) as response:
        assert response.status == 200
    async with client_session.get(http_url(app, "/test/unbounded?seconds=0.4")) as response:
        assert response.status == 200  # timeout(None): the route has no deadline


async def test_a_body_that_never_ends_answers_504(app_with_slow_routes: App) -> None:
    client = await RawHttp.open(app_with_slow_routes)
    head = b"POST /auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    status, body = await client.request(head + b'{"username": ')  # and never the rest
    assert status == 504 and b'"code": "timeout"' in body
    await client.close()
