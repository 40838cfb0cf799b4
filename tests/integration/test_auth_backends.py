"""Accounts, nonces and failed-login limits over the embedded backends and the real ones (MariaDB, Redis).

With the real backends, two apps share the database and the Redis as two processes would: a nonce is
redeemed once whichever process redeems it, and failed logins count wherever they happen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
from redis.asyncio import Redis

from gameserver.app import App
from gameserver.features.identity.accounts import (
    account_by_uid,
    account_by_username,
    display_names,
    set_display_name,
    set_family,
    set_world,
    uids_in_world,
)
from gameserver.features.identity.nonces import redeem_nonce
from tests.clients import TcpClient, http_url

PASSWORD = "correct horse battery"
REDEEMERS = 200


async def post(session: aiohttp.ClientSession, app: App, path: str, body: Any = None, token: str = "") -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.post(http_url(app, path), json=body, headers=headers) as response:
        return response.status, await response.json()


async def apps(app_factory: Callable[..., Any], backends: dict[str, Any], **auth: Any) -> list[App]:
    """Two apps sharing the real backends, like two processes; one app on the embedded ones (not shareable)."""
    first: App = await app_factory(**backends, auth=auth)
    if not backends:
        return [first]
    return [first, await app_factory(first.config)]


async def test_register_login_and_nonce_round_trips(
    app_factory: Callable[..., Any], backends: dict[str, Any], client_session: aiohttp.ClientSession
) -> None:
    app = await app_factory(**backends)
    status, body = await post(client_session, app, "/auth/register", {"username": "Zoë1", "password": PASSWORD})
    assert (status, body["error"]["code"]) == (400, "bad_request")
    status, account = await post(
        client_session, app, "/auth/register", {"username": "Zoe", "password": PASSWORD, "display_name": "佐伊 🐉"}
    )
    assert status == 201
    status, body = await post(client_session, app, "/auth/register", {"username": "zoe", "password": PASSWORD})
    assert (status, body["error"]["code"]) == (409, "username_taken")
    status, body = await post(client_session, app, "/auth/login", {"username": "ZOE", "password": PASSWORD})
    assert (status, body["uid"]) == (200, account["uid"])
    status, body = await post(client_session, app, "/auth/login", {"username": "zoe", "password": "not it at all"})
    assert (status, body["error"]["code"]) == (401, "wrong_credentials")

    tcp = await TcpClient.open(app.ports["gate-tcp"])
    reply = await tcp.call("auth.register", {"username": "yuri", "password": PASSWORD})
    assert reply["ok"], reply
    assert (await tcp.call("auth.register", {"username": "YURI", "password": PASSWORD}))["error"]["code"] == (
        "username_taken"
    )
    reply = await tcp.call("auth.login", {"username": "zoe", "password": PASSWORD})
    assert reply["ok"] and reply["data"]["uid"] == account["uid"]
    reply = await tcp.call("auth.nonce")  # the login bound the connection to zoe
    identity = await redeem_nonce(app.resources.redis, app.resources.keys, reply["data"]["nonce"])
    assert identity is not None and type(identity.pop("issued_ms")) is int  # see docs/auth.md
    assert identity == {"uid": account["uid"], "name": "佐伊 🐉", "world": 1, "family": None}
    await tcp.close()


async def test_concurrent_registrations_of_one_name(
    app_factory: Callable[..., Any], backends: dict[str, Any], client_session: aiohttp.ClientSession
) -> None:
    servers = await apps(app_factory, backends)
    body = {"username": "xena", "password": PASSWORD}
    results = await asyncio.gather(
        *(post(client_session, servers[i % len(servers)], "/auth/register", body) for i in range(10))
    )
    assert sorted(status for status, _ in results) == [201] + [409] * 9


async def test_account_helpers(app_factory: Callable[..., Any], backends: dict[str, Any]) -> None:
    app = await app_factory(**backends, auth={"world": 7})
    tcp = await TcpClient.open(app.ports["gate-tcp"])
    uids = [
        (await tcp.call("auth.register", {"username": name, "password": PASSWORD}))["data"]["uid"]
        for name in ("ann", "ben")
    ]
    async with app.resources.db.transaction() as tx:
        ann = await account_by_uid(tx, uids[0])
        assert ann is not None and (ann.username, ann.display_name, ann.world, ann.family) == ("ann", "ann", 7, None)
        assert ann == await account_by_username(tx, "ANN")
        assert await set_family(tx, uids[0], 42)
        assert await set_family(tx, uids[0], 42)  # unchanged is still found
        assert await set_display_name(tx, uids[1], "Ben ✨")
        assert await set_world(tx, uids[1], 2)
        assert not await set_family(tx, 10**9, 1)
    async with app.resources.db.transaction() as tx:
        assert await display_names(tx, [*uids, 10**9]) == {uids[0]: "ann", uids[1]: "Ben ✨"}
        assert await display_names(tx, []) == {}
        assert await uids_in_world(tx, 7) == [uids[0]]
        assert await uids_in_world(tx, 2) == [uids[1]]
        ben = await account_by_uid(tx, uids[1])
        assert ben is not None and ben.identity() == {"uid": uids[1], "name": "Ben ✨", "world": 2, "family": None}
    reply = await tcp.call("auth.nonce")  # bound to ben by the last register
    identity = await redeem_nonce(app.resources.redis, app.resources.keys, reply["data"]["nonce"])
    assert identity is not None and type(identity.pop("issued_ms")) is int  # see docs/auth.md
    assert identity == {"uid": uids[1], "name": "Ben ✨", "world": 2, "family": None}
    await tcp.close()


async def test_a_nonce_is_redeemed_once_across_processes(
    app_factory: Callable[..., Any], backends: dict[str, Any], client_session: aiohttp.ClientSession
) -> None:
    servers = await apps(app_factory, backends)
    _, account = await post(client_session, servers[0], "/auth/register", {"username": "vera", "password": PASSWORD})
    status, body = await post(client_session, servers[-1], "/auth/nonce", token=account["token"])
    assert status == 200
    # each redeemer has its own connection, spread over the processes, as chat edges would
    edges: list[Redis] = [servers[i % len(servers)].resources.open_redis() for i in range(REDEEMERS)]
    keys = servers[0].resources.keys
    try:
        results = await asyncio.gather(*(redeem_nonce(edge, keys, body["nonce"]) for edge in edges))
    finally:
        await asyncio.gather(*(edge.aclose() for edge in edges))
    winners = [{key: value for key, value in r.items() if key != "issued_ms"} for r in results if r is not None]
    assert winners == [{"uid": account["uid"], "name": "vera", "world": 1, "family": None}]


async def test_failed_logins_count_across_processes(
    app_factory: Callable[..., Any], backends: dict[str, Any], client_session: aiohttp.ClientSession
) -> None:
    servers = await apps(app_factory, backends, max_failures_user=4)
    await post(client_session, servers[0], "/auth/register", {"username": "walt", "password": PASSWORD})
    wrong = {"username": "walt", "password": "wrong password"}
    for i in range(4):
        assert (await post(client_session, servers[i % len(servers)], "/auth/login", wrong))[0] == 401
    for server in servers:
        status, body = await post(client_session, server, "/auth/login", {"username": "walt", "password": PASSWORD})
        assert (status, body["error"]["code"]) == (429, "rate_limited")
    keys = servers[0].resources.keys
    ttl = await servers[0].resources.redis.pttl(keys.login_failures_user("walt"))
    assert 0 < ttl <= servers[0].config.auth.failure_window * 1000
