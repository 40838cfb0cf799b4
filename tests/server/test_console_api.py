"""The console's JSON API and when the console is served; what /metrics exposes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from gameserver.app import App
from gameserver.config import Config
from gameserver.features.console import console_enabled
from tests.clients import WsClient, http_url


async def test_the_page_and_its_files(app: App, client_session: aiohttp.ClientSession) -> None:
    for path, content_type in [
        ("/", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ]:
        async with client_session.get(http_url(app, path)) as response:
            assert (response.status, response.content_type) == (200, content_type)
    async with client_session.get(http_url(app, "/console/../config.toml")) as response:
        assert response.status == 404
    async with client_session.get(http_url(app, "/console/app.py")) as response:
        assert response.status == 404


async def test_functions_info_and_status(app: App, client_session: aiohttp.ClientSession) -> None:
    async with client_session.get(http_url(app, "/console/api/functions")) as response:
        functions = (await response.json())["functions"]
    assert functions == sorted(app.functions(), key=lambda f: f["fn"])
    echo = next(f for f in functions if f["fn"] == "sys.echo")
    assert echo["login"] is False and echo["args"] == []

    async with client_session.get(http_url(app, "/console/api/info")) as response:
        info = await response.json()
    assert info["ports"] == app.ports and info["node"] == "test"
    assert "/gate" in info["ws_paths"] and "/config" in info["http_routes"]

    client = await WsClient.open(app.ports["ws"])
    await client.call("sys.echo")
    async with client_session.get(http_url(app, "/console/api/status")) as response:
        status = await response.json()
    await client.close()
    assert status["status"] == "ok" and status["roles"] == list(app.roles)
    assert status["connections"]["ws"] == 1
    assert status["requests"] >= 1 and status["functions"] == len(app.table)
    assert status["reload"] == {"enabled": False}
    assert status["game_config"]["etag"].startswith('"')
    assert status["metrics"]["gameserver_connections{listener=ws}"] == 1


async def test_the_log_tail(app: App, client_session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with client_session.get(http_url(app, "/console/api/logs")) as response:
        start = (await response.json())["next"]
    logging.getLogger("gameserver.test").warning("marker %d", 42)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("gameserver.test").exception("with a traceback")
    async with client_session.get(http_url(app, f"/console/api/logs?after={start}")) as response:
        tail = await response.json()
    lines = [line for line in tail["lines"] if line["logger"] == "gameserver.test"]
    assert [(line["level"], line["msg"]) for line in lines] == [("warning", "marker 42"), ("error", "with a traceback")]
    assert "ValueError: boom" in lines[1]["exc"]
    assert [line["seq"] for line in tail["lines"]] == list(range(start + 1, tail["next"] + 1))
    async with client_session.get(http_url(app, f"/console/api/logs?after={tail['next']}")) as response:
        assert (await response.json())["lines"] == []
    async with client_session.get(http_url(app, "/console/api/logs?after=x")) as response:
        assert response.status == 400


async def test_never_turns_the_console_off(
    app_factory: Callable[..., Any], client_session: aiohttp.ClientSession
) -> None:
    app = await app_factory(console={"enabled": "never"})
    for path in ("/", "/console/api/functions", "/console/api/logs"):
        async with client_session.get(http_url(app, path)) as response:
            assert response.status == 404
    async with client_session.get(http_url(app, "/config")) as response:
        assert response.status == 200


@pytest.mark.parametrize(
    ("host", "mode", "served"),
    [
        ("127.0.0.1", "auto", True),
        ("127.0.0.2", "auto", True),
        ("::1", "auto", True),
        ("localhost", "auto", True),
        ("0.0.0.0", "auto", False),
        ("10.1.2.3", "auto", False),
        ("0.0.0.0", "always", True),
        ("127.0.0.1", "never", False),
    ],
)
def test_served_on_loopback_unless_configured(
    config_factory: Callable[..., Config], host: str, mode: str, served: bool
) -> None:
    assert console_enabled(config_factory(server={"host": host}, console={"enabled": mode})) is served


def test_not_served_without_http(config_factory: Callable[..., Config]) -> None:
    assert not console_enabled(config_factory(http={"enabled": False}, console={"enabled": "always"}))


async def test_metrics_exposes_process_uptime_reloads_requests_and_connections(
    app: App, client_session: aiohttp.ClientSession
) -> None:
    client = await WsClient.open(app.ports["ws"])
    await client.call("sys.echo")
    async with client_session.get(http_url(app, "/metrics")) as response:
        text = await response.text()
    await client.close()
    for expected in (
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_start_time_seconds ",
        "python_info{",
        "gameserver_uptime_seconds ",
        'gameserver_reloads_total{outcome="ok",what="modules"}',
        'gameserver_reloads_total{outcome="error",what="game_config"}',
        'gameserver_requests_total{fn="sys.echo",outcome="ok"}',
        'gameserver_request_seconds_bucket{fn="sys.echo",le="0.001"}',
        'gameserver_connections{listener="ws"} 1.0',
        "gameserver_inflight_requests ",
    ):
        assert expected in text, expected
