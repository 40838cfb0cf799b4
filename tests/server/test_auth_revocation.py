"""Session max age, logout and revocation through real sockets, on SQLite and on the real MariaDB (``db_url``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from gameserver.app import App
from gameserver.features.identity.tokens import Tokens
from tests.clients import ChatClient, TcpClient, WsClient
from tests.fixtures.modules import PATH as FIXTURE_MODULES

PASSWORD = "correct horse battery"
ADMIN_KEY = "k" * 40
Factory = Callable[..., Any]


@pytest.fixture
async def app(app_factory: Factory, db_url: str) -> App:
    started: App = await app_factory(db={"url": db_url}, auth={"admin_key": ADMIN_KEY})
    return started


class Http:
    def __init__(self, session: aiohttp.ClientSession, app: App) -> None:
        self.session = session
        self.base = f"http://127.0.0.1:{app.ports['http']}"

    async def post(
        self, path: str, body: Any = None, *, token: str | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        async with self.session.post(self.base + path, json=body, headers=sent) as response:
            return response.status, await response.json()


@pytest.fixture
def http(app: App, client_session: aiohttp.ClientSession) -> Http:
    return Http(client_session, app)


async def register(http: Http, name: str) -> tuple[int, str]:
    status, body = await http.post("/auth/register", {"username": name, "password": PASSWORD})
    assert status == 201, body
    return body["uid"], body["token"]


async def login(http: Http, name: str) -> str:
    status, body = await http.post("/auth/login", {"username": name, "password": PASSWORD})
    assert status == 200, body
    return str(body["token"])


async def bound_tcp(app: App, token: str) -> TcpClient:
    client = await TcpClient.open(app.ports["gate-tcp"])
    assert (await client.call("session.bind", {"token": token}))["ok"]
    return client


async def bound_ws(app: App, token: str) -> WsClient:
    client = await WsClient.open(app.ports["ws"])
    assert (await client.call("session.bind", {"token": token}))["ok"]
    return client


async def refused_everywhere(app: App, http: Http, token: str) -> None:
    """The token opens nothing any more: HTTP, a gate request's token, session.bind."""
    for path in ("/auth/nonce", "/auth/refresh", "/auth/logout"):
        status, body = await http.post(path, token=token)
        assert (status, body["error"]["message"]) == (401, "token revoked"), path
    tcp = await TcpClient.open(app.ports["gate-tcp"])
    assert (await tcp.call("mail.list", token=token))["error"] == {"code": "unauthorized", "message": "token revoked"}
    assert (await tcp.call("session.bind", {"token": token}))["error"]["code"] == "unauthorized"
    await tcp.close()


# auth_time and session_max_age


async def test_refresh_keeps_the_login_time(app: App, http: Http) -> None:
    _, token = await register(http, "ann")
    tokens: Tokens = app.resources.extra["tokens"]
    status, body = await http.post("/auth/refresh", token=token)
    assert status == 200
    assert tokens.claims(body["token"]).auth_time == tokens.claims(token).auth_time
    tcp = await TcpClient.open(app.ports["gate-tcp"])
    reply = await tcp.call("auth.refresh", token=body["token"])
    assert tokens.claims(reply["data"]["token"]).auth_time == tokens.claims(token).auth_time
    await tcp.close()


async def test_refresh_refuses_past_the_session_max_age(app_factory: Factory, client_session: Any) -> None:
    app = await app_factory(auth={"session_max_age": 60.0})
    http = Http(client_session, app)
    uid, _ = await register(http, "bea")
    tokens: Tokens = app.resources.extra["tokens"]
    # Logged in 65 s ago: the token expired 5 s ago, within the verification leeway, so only the age refuses it.
    old = tokens.issue(uid, auth_time=int(time.time()) - 65)
    assert (await http.post("/auth/nonce", token=old))[0] == 200
    status, body = await http.post("/auth/refresh", token=old)
    assert (status, body["error"]["message"]) == (401, "session older than auth.session_max_age: log in again")
    young = tokens.issue(uid, auth_time=int(time.time()) - 30)
    status, body = await http.post("/auth/refresh", token=young)
    assert status == 200
    assert tokens.claims(body["token"]).auth_time == tokens.claims(young).auth_time
    tcp = await TcpClient.open(app.ports["gate-tcp"])
    reply = await tcp.call("auth.refresh", token=old)
    assert reply["error"]["code"] == "unauthorized"
    await tcp.close()


# Logout


async def test_http_logout_revokes_every_earlier_token(app: App, http: Http) -> None:
    uid, first = await register(http, "cid")
    second = await login(http, "cid")
    tcp, ws = await bound_tcp(app, second), await bound_ws(app, first)
    status, body = await http.post("/auth/logout", token=first)
    assert status == 200 and body["uid"] == uid and body["revoked_before"] <= time.time() * 1000
    assert await tcp.closed()
    assert await ws.close_code() == 1000  # a normal close: PROTOCOL.md has no revocation push
    for token in (first, second):
        await refused_everywhere(app, http, token)
    fresh = await login(http, "cid")  # at once: the new token is issued after the revocation
    assert (await http.post("/auth/nonce", token=fresh))[0] == 200
    await (await bound_tcp(app, fresh)).close()


async def chat_login(app: App, http: Http, token: str, kind: str) -> ChatClient:
    status, body = await http.post("/auth/nonce", token=token)
    assert status == 200, body
    client = await (ChatClient.tcp(app.ports["chat-tcp"]) if kind == "tcp" else ChatClient.websocket(app.ports["ws"]))
    await client.login(body["nonce"])
    return client


async def test_logout_closes_the_players_chat_connections(app: App, http: Http) -> None:
    _, token = await register(http, "eve")
    _, other_token = await register(http, "fay")
    tcp, ws = await chat_login(app, http, token, "tcp"), await chat_login(app, http, token, "ws")
    bystander = await chat_login(app, http, other_token, "tcp")
    assert (await http.post("/auth/logout", token=token))[0] == 200
    for client in (tcp, ws):  # the chat edge never saw the token: it hears the revocation and says why it closes
        assert await client.recv() == ("ERROR", "unauthorized")
        assert await client.closed()
    await bystander.send("PING")
    assert await bystander.recv() == ("PONG", "")
    await bystander.close()


async def test_a_nonce_got_before_logout_does_not_log_into_chat(app: App, http: Http) -> None:
    _, token = await register(http, "gus")
    status, body = await http.post("/auth/nonce", token=token)
    assert status == 200
    assert (await http.post("/auth/logout", token=token))[0] == 200
    client = await ChatClient.tcp(app.ports["chat-tcp"])
    await client.send("LOGIN", body["nonce"])
    assert await client.recv() == ("ERROR", "unauthorized")
    assert await client.closed()
    fresh = await login(http, "gus")  # logging in again gives nonces that work
    await (await chat_login(app, http, fresh, "tcp")).close()


async def test_gate_logout_keeps_its_own_connection_open(app: App, http: Http) -> None:
    _, token = await register(http, "dan")
    other = await bound_tcp(app, token)
    caller = await WsClient.open(app.ports["ws"], binary=False)
    assert (await caller.call("auth.login", {"username": "dan", "password": PASSWORD}))["ok"]
    reply = await caller.call("auth.logout")
    assert reply["ok"] and set(reply["data"]) == {"uid", "revoked_before"}
    assert await other.closed()
    assert (await caller.call("mail.list"))["error"]["code"] == "unauthorized"  # unbound, still open
    assert (await caller.call("auth.login", {"username": "dan", "password": PASSWORD}))["ok"]
    assert (await caller.call("mail.list"))["ok"]
    await refused_everywhere(app, http, token)
    await caller.close()


async def test_logout_needs_a_login(app: App, http: Http) -> None:
    assert (await http.post("/auth/logout"))[0] == 401
    tcp = await TcpClient.open(app.ports["gate-tcp"])
    assert (await tcp.call("auth.logout"))["error"]["code"] == "unauthorized"
    await tcp.close()


# The operators' revoke


async def test_admin_revoke(app: App, http: Http) -> None:
    uid, token = await register(http, "eve")
    ws = await bound_ws(app, token)
    body = {"uid": uid}
    assert (await http.post("/auth/revoke", body))[0] == 401
    assert (await http.post("/auth/revoke", body, headers={"X-Admin-Key": "wrong"}))[0] == 401
    assert (await http.post("/auth/revoke", body, token=token))[0] == 401  # a player's token is no admin key
    status, answer = await http.post("/auth/revoke", {"uid": uid + 100}, token=ADMIN_KEY)
    assert (status, answer["error"]["code"]) == (404, "account_not_found")
    for bad in ({}, {"uid": "1"}, {"uid": True}, {"uid": 1, "more": 2}):
        assert (await http.post("/auth/revoke", bad, token=ADMIN_KEY))[0] == 400
    status, answer = await http.post("/auth/revoke", body, headers={"X-Admin-Key": ADMIN_KEY})
    assert status == 200 and answer["uid"] == uid
    assert await ws.close_code() == 1000
    await refused_everywhere(app, http, token)
    # revoking again later moves the time on, never back
    status, again = await http.post("/auth/revoke", body, token=ADMIN_KEY)
    assert status == 200 and again["revoked_before"] >= answer["revoked_before"]


async def test_admin_revoke_is_off_without_a_key(app_factory: Factory, client_session: Any) -> None:
    app = await app_factory()
    http = Http(client_session, app)
    status, body = await http.post("/auth/revoke", {"uid": 1}, token="anything")
    assert (status, body["error"]["code"]) == (403, "forbidden")


# Across restarts: the revocations are loaded from SQL


async def test_revocations_survive_a_restart(app_factory: Factory, db_url: str, client_session: Any) -> None:
    config = {"db": {"url": db_url}, "auth": {"secret": "s" * 48}}
    first = await app_factory(**config)
    http = Http(client_session, first)
    _, token = await register(http, "fay")
    _, keep = await register(http, "gus")
    assert (await http.post("/auth/logout", token=token))[0] == 200
    await first.stop()
    second = await app_factory(**config)
    assert second.resources.extra["revocations"].loaded.is_set()
    tcp = await TcpClient.open(second.ports["gate-tcp"])
    assert (await tcp.call("mail.list", token=token))["error"]["message"] == "token revoked"  # no SQL per request
    assert (await tcp.call("mail.list", token=keep))["ok"]
    await tcp.close()


async def test_a_connection_bound_without_a_token_cannot_refresh(app_factory: Factory) -> None:
    app = await app_factory(modules={"paths": [FIXTURE_MODULES]})
    tcp = await TcpClient.open(app.ports["gate-tcp"])
    assert (await tcp.call("testkit.bind_after", {"seconds": 0, "player": 42}))["ok"]  # module code, no claims
    for fn in ("auth.refresh", "auth.nonce"):
        assert (await tcp.call(fn))["error"] == {"code": "unauthorized", "message": "log in or send a token"}
    await tcp.close()
