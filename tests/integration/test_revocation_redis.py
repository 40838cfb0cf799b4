"""Revocation across processes: two apps in this loop share the real Redis (a key prefix of this test's own) and
one SQLite database, as two processes of one deployment would. A logout or an operator's revoke on one reaches
the other through the bus: its connections bound to the player close, and its per-request check (no SQL)
refuses the revoked tokens."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gameserver.app import App
from gameserver.bus.redispubsub import RedisBus
from tests.clients import TcpClient, WsClient, http_url

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
ADMIN_KEY = "k" * 40
Apps = tuple[App, App]


@pytest.fixture
async def apps(app_factory: Callable[..., Awaitable[App]], redis_url: str, tmp_path: Path) -> AsyncIterator[Apps]:
    shared = {
        "redis": {"url": redis_url, "prefix": f"test:revoke:{uuid.uuid4().hex}:"},
        "db": {"url": f"sqlite+aiosqlite:///{tmp_path / 'game.db'}"},
        "mail": {"root": str(tmp_path / "mail")},
        "auth": {"secret": "s" * 48, "admin_key": ADMIN_KEY},
    }
    a = await app_factory(server={"node_id": "a", "data_dir": str(tmp_path / "a")}, **shared)
    b = await app_factory(server={"node_id": "b", "data_dir": str(tmp_path / "b")}, **shared)
    yield a, b


async def post(session: aiohttp.ClientSession, app: App, path: str, **kwargs: Any) -> tuple[int, Any]:
    async with session.post(http_url(app, path), **kwargs) as response:
        return response.status, await response.json()


async def registered(app: App, name: str) -> tuple[TcpClient, int, str]:
    client = await TcpClient.open(app.ports["gate-tcp"])
    reply = await client.call("auth.register", {"username": name, "password": PASSWORD})
    assert reply["ok"], reply
    return client, reply["data"]["uid"], reply["data"]["token"]


async def test_the_bus_is_redis(apps: Apps) -> None:
    assert all(isinstance(app.resources.bus, RedisBus) for app in apps)


async def test_logout_on_one_process_reaches_the_other(apps: Apps, client_session: aiohttp.ClientSession) -> None:
    a, b = apps
    on_a, uid, token = await registered(a, "ivy")
    on_b = await WsClient.open(b.ports["ws"])
    assert (await on_b.call("session.bind", {"token": token}))["ok"]
    status, body = await post(client_session, a, "/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert status == 200
    assert await on_b.close_code() == 1000
    assert await on_a.closed()  # the registering connection on a, bound with the revoked token, too
    assert b.resources.extra["revocations"].revoked[uid] == body["revoked_before"]  # heard, not read from SQL
    tcp = await TcpClient.open(b.ports["gate-tcp"])
    assert (await tcp.call("mail.list", token=token))["error"] == {"code": "unauthorized", "message": "token revoked"}
    # a fresh login on b works at once, and is not closed by the revocation it follows
    assert (await tcp.call("auth.login", {"username": "ivy", "password": PASSWORD}))["ok"]
    assert (await tcp.call("mail.list"))["ok"]
    await tcp.close()


async def test_admin_revoke_on_one_process_closes_connections_on_the_other(
    apps: Apps, client_session: aiohttp.ClientSession
) -> None:
    a, b = apps
    on_a, uid, token = await registered(a, "jon")
    bystander, _, other_token = await registered(a, "kim")
    status, _ = await post(client_session, b, "/auth/revoke", json={"uid": uid}, headers={"X-Admin-Key": ADMIN_KEY})
    assert status == 200
    assert await on_a.closed()
    assert (await bystander.call("mail.list"))["ok"]  # another player's connection stays
    status, body = await post(client_session, a, "/auth/nonce", headers={"Authorization": f"Bearer {token}"})
    assert (status, body["error"]) == (401, {"code": "unauthorized", "message": "token revoked"})
    assert (await bystander.call("mail.list", token=other_token))["ok"]
    await bystander.close()
