"""Health and metrics on the HTTP port (PROTOCOL.md, "HTTP")."""

from __future__ import annotations

import re

import aiohttp

from gameserver.app import App
from tests.clients import TcpClient, http_url


async def get(app: App, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(http_url(app, path)) as response:
            return response.status, response.headers["Content-Type"], await response.text()


def requests_count(metrics: str, fn: str, outcome: str) -> float:
    match = re.search(rf'^gameserver_requests_total{{fn="{re.escape(fn)}",outcome="{outcome}"}} (\S+)$', metrics, re.M)
    return float(match.group(1)) if match else 0.0


async def test_healthz(app: App) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(http_url(app, "/healthz")) as response:
            assert response.status == 200
            body = await response.json()
    assert body["status"] == "ok"
    assert body["node"] == "test"
    assert {"db", "redis", "gate-tcp", "ws"} <= set(body["checks"])
    assert all(value == "ok" for value in body["checks"].values())
    assert set(body["connections"]) >= {"gate-tcp", "ws"}


async def test_healthz_is_503_while_stopping(app: App) -> None:
    app.request_stop()
    status, _, text = await get(app, "/healthz")
    assert status == 503
    assert '"status": "unhealthy"' in text


async def test_metrics_count_requests_per_function(app: App) -> None:
    _, _, before = await get(app, "/metrics")
    client = await TcpClient.open(app.ports["gate-tcp"])
    for _ in range(3):
        assert (await client.call("sys.echo"))["ok"] is True
    assert (await client.call("sys.echo", {"other": "args"}))["ok"] is True
    assert (await client.call("no.such"))["ok"] is False
    await client.close()
    status, content_type, after = await get(app, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    assert requests_count(after, "sys.echo", "ok") - requests_count(before, "sys.echo", "ok") == 4
    assert (
        requests_count(after, "(unknown)", "unknown_function") - requests_count(before, "(unknown)", "unknown_function")
        == 1
    )
    assert 'gameserver_request_seconds_bucket{fn="sys.echo",le="+Inf"}' in after
    assert re.search(r'^gameserver_connections{listener="gate-tcp"} ', after, re.M)


async def test_unknown_route_is_a_json_404(app: App) -> None:
    status, content_type, text = await get(app, "/nope")
    assert status == 404
    assert content_type.startswith("application/json")
    assert '"code": "not_found"' in text


async def test_a_wrong_method_is_a_json_405_naming_the_allowed_ones(app: App) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(http_url(app, "/healthz")) as response:
            assert response.status == 405
            assert set(response.headers["Allow"].split(",")) == {"GET", "HEAD"}
            assert (await response.json())["error"]["code"] == "method_not_allowed"
