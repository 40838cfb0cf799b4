"""Start-up and its failures (gameserver/app.py): a start that fails leaves nothing listening."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest

from gameserver.app import App
from gameserver.config import Config
from gameserver.errors import ConfigError


async def test_ports_are_bound_and_reported(app: App) -> None:
    assert set(app.ports) >= {"gate-tcp", "ws", "http"}
    assert all(port > 0 for port in app.ports.values())


async def test_a_port_in_use_fails_the_start_and_closes_what_was_opened(
    config_factory: Callable[..., Config],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        app = App(config_factory(gate={"ws_port": taken.getsockname()[1]}))
        with pytest.raises(OSError):
            await app.start()
    gate = app.listeners["gate-tcp"]
    assert gate.server is not None and not gate.server.is_serving()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", app.ports["gate-tcp"])
    assert not [t for t in asyncio.all_tasks() if t.get_name().endswith("-reaper") and not t.done()]


async def test_gate_without_worker_is_refused(config_factory: Callable[..., Config]) -> None:
    app = App(config_factory(server={"roles": ["gate"]}))
    with pytest.raises(ConfigError, match="server.roles: gate without worker"):
        await app.start()


async def test_a_bad_module_path_is_refused(config_factory: Callable[..., Config]) -> None:
    app = App(config_factory(modules={"paths": ["/nonexistent/modules"]}))
    with pytest.raises(ConfigError, match="modules.paths: /nonexistent/modules is not a folder"):
        await app.start()


@pytest.mark.parametrize("roles", [["chat"], ["auth"], ["chat", "auth"]])
async def test_a_process_without_a_worker_starts_and_serves_health(app_factory: Any, roles: list[str]) -> None:
    # Without a worker no handler runs here, so handlers needing worker-only resources (mail) must not stop it.
    app = await app_factory(server={"roles": roles})
    assert app.dispatcher is None and app.table == {}
    healthy, details = await app.health()
    assert healthy, details
