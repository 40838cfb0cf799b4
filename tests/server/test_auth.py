"""Accounts, tokens, session.bind, nonces and the login limits, in-process (SQLite + in-process store)."""

from __future__ import annotations

import asyncio
import base64
import json
import stat
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import jwt
import pytest

from gameserver.app import App
from gameserver.config import Config
from gameserver.errors import ConfigError
from gameserver.features.identity.nonces import redeem_nonce
from gameserver.features.identity.secret import SECRET_FILE
from gameserver.features.identity.tokens import Tokens
from tests.clients import TcpClient, WsClient

PASSWORD = "correct horse battery"


class Http:
    """JSON over HTTP against one app: ``await http.post(path, body, token=...) -> (status, body, headers)``."""

    def __init__(self, session: aiohttp.ClientSession, port: int) -> None:
        self.session = session
        self.base = f"http://127.0.0.1:{port}"

    async def post(
        self, path: str, body: Any = None, *, token: str | None = None, raw: bytes | None = None
    ) -> tuple[int, Any, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        async with self.session.post(self.base + path, data=data, headers=headers) as response:
            return response.status, await response.json(), response.headers


@pytest.fixture
def http(app: App, client_session: aiohttp.ClientSession) -> Http:
    return Http(client_session, app.ports["http"])


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forgeries(app: App, uid: int, token: str) -> dict[str, str]:
    """Tokens that must all be refused, by what is wrong with them."""
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    tokens: Tokens = app.resources.extra["tokens"]
    other_key = b"another-secret-that-is-32-bytes-long!"
    key = (app.config.data_path / SECRET_FILE).read_text().strip().encode()
    return {
        "wrong key": jwt.encode(claims, other_key, algorithm="HS256"),
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "alg none, no dot": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}",
        "altered payload": f"{header}.{b64({**claims, 'sub': str(uid + 1)})}.{signature}",
        "expired": tokens.issue(uid, now=time.time() - 2 * app.config.auth.token_ttl),
        "other issuer": jwt.encode({**claims, "iss": "someone-else"}, key, algorithm="HS256"),
        "no expiry": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, key, algorithm="HS256"),
        "garbage": "garbage",
        "three garbage parts": "a.b.c",
        "empty": "",
    }


async def register(http: Http, username: str, password: str = PASSWORD) -> dict[str, Any]:
    status, body, _ = await http.post("/auth/register", {"username": username, "password": password})
    assert status == 201, body
    return dict(body)


# Register and log in


async def test_register_and_login_over_http(app: App, http: Http) -> None:
    status, body, _ = await http.post("/auth/register", {"username": "Alice", "password": PASSWORD})
    assert status == 201
    assert set(body) == {"uid", "token"} and isinstance(body["uid"], int)
    uid = body["uid"]
    status, body, _ = await http.post("/auth/login", {"username": "alice", "password": PASSWORD})
    assert (status, body["uid"]) == (200, uid)
    assert app.resources.extra["tokens"].verify(body["token"]) == uid
    tcp = await TcpClient.open(app.ports["gate-tcp"])
    reply = await tcp.call("auth.refresh", token=body["token"])
    assert reply["ok"] and reply["data"]["uid"] == uid
    await tcp.close()


@pytest.mark.parametrize("transport", ["tcp", "ws-msgpack", "ws-json"])
async def test_register_and_login_over_gate(app: App, transport: str) -> None:
    async def connect() -> TcpClient | WsClient:
        if transport == "tcp":
            return await TcpClient.open(app.ports["gate-tcp"])
        return await WsClient.open(app.ports["ws"], binary=transport == "ws-msgpack")

    first = await connect()
    reply = await first.call("auth.register", {"username": "bob", "password": PASSWORD, "display_name": "Bobby"})
    assert reply["ok"], reply
    uid = reply["data"]["uid"]
    # register binds the connection: a login-required call needs no token now
    reply = await first.call("auth.nonce")
    assert reply["ok"], reply
    identity = await redeem_nonce(app.resources.redis, app.resources.keys, reply["data"]["nonce"])
    assert identity is not None and abs(identity.pop("issued_ms") - time.time() * 1000) < 60_000  # for revocations
    assert identity == {
        "uid": uid,
        "name": "Bobby",
        "world": 1,
        "family": None,
    }
    await first.close()

    second = await connect()
    assert (await second.call("auth.nonce"))["error"]["code"] == "unauthorized"
    reply = await second.call("auth.login", {"username": "BOB", "password": PASSWORD})
    assert reply["ok"] and reply["data"]["uid"] == uid
    assert (await second.call("auth.nonce"))["ok"]
    await second.close()


async def test_duplicate_username(app: App, http: Http) -> None:
    await register(http, "carol")
    status, body, _ = await http.post("/auth/register", {"username": "Carol", "password": "another password"})
    assert (status, body["error"]["code"]) == (409, "username_taken")
    tcp = await TcpClient.open(app.ports["gate-tcp"])
    reply = await tcp.call("auth.register", {"username": "CAROL", "password": PASSWORD})
    assert reply == {"id": 1, "ok": False, "error": {"code": "username_taken", "message": "that username is taken"}}
    await tcp.close()


async def test_concurrent_registrations_of_one_name(app: App, http: Http) -> None:
    results = await asyncio.gather(
        *(http.post("/auth/register", {"username": "dave", "password": PASSWORD}) for _ in range(10))
    )
    assert sorted(status for status, _, _ in results) == [201] + [409] * 9


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body must be JSON"),
        (b"[1, 2]", "body must be a JSON object"),
        ({"username": "erin"}, "missing field 'password'"),
        ({"password": PASSWORD}, "missing field 'username'"),
        ({"username": 42, "password": PASSWORD}, "username must be a string"),
        ({"username": "erin", "password": PASSWORD, "admin": True}, "unknown field 'admin'"),
        ({"username": "er", "password": PASSWORD}, "username must be 3-32 characters"),
        ({"username": "e" * 33, "password": PASSWORD}, "username must be 3-32 characters"),
        ({"username": "erin smith", "password": PASSWORD}, "username must be 3-32 characters"),
        ({"username": "_erin", "password": PASSWORD}, "username must be 3-32 characters"),
        ({"username": "érin", "password": PASSWORD}, "username must be 3-32 characters"),
        ({"username": "erin", "password": "short"}, "password must be 8-128 characters"),
        ({"username": "erin", "password": "x" * 129}, "password must be 8-128 characters"),
        ({"username": "erin", "password": "tab\there ok?"}, "password must not contain control characters"),
        ({"username": "erin", "password": PASSWORD, "display_name": " "}, "display_name must be 1-32 characters"),
        ({"username": "erin", "password": PASSWORD, "display_name": "a\u200bb"}, "display_name must be printable"),
    ],
)
async def test_register_bad_input(http: Http, body: Any, message: str) -> None:
    raw = body if isinstance(body, bytes) else None
    status, answer, _ = await http.post("/auth/register", None if raw else body, raw=raw)
    assert status == 400
    assert answer["error"]["code"] == "bad_request"
    assert answer["error"]["message"].startswith(message)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"nope", "body must be JSON"),
        ({"username": "frank"}, "missing field 'password'"),
        ({"username": "frank", "password": None}, "password must be a string"),
    ],
)
async def test_login_bad_input(http: Http, body: Any, message: str) -> None:
    raw = body if isinstance(body, bytes) else None
    status, answer, _ = await http.post("/auth/login", None if raw else body, raw=raw)
    assert (status, answer["error"]["code"], answer["error"]["message"]) == (400, "bad_request", message)


async def test_gate_bad_input(app: App) -> None:
    tcp = await TcpClient.open(app.ports["gate-tcp"])
    assert (await tcp.call("auth.register", {"username": "gina"}))["error"] == {
        "code": "bad_request",
        "message": "missing argument password for auth.register",
    }
    reply = await tcp.call("auth.register", {"username": "gi", "password": PASSWORD})
    assert reply["error"]["code"] == "bad_request" and "3-32 characters" in reply["error"]["message"]
    reply = await tcp.call("auth.login", {"username": ["gina"], "password": PASSWORD})
    assert reply["error"] == {"code": "bad_request", "message": "username must be a string"}
    await tcp.close()


async def test_wrong_credentials(app: App, http: Http) -> None:
    await register(http, "hank")
    for body in ({"username": "hank", "password": "wrong password"}, {"username": "nobody", "password": PASSWORD}):
        status, answer, _ = await http.post("/auth/login", body)
        assert (status, answer["error"]["code"]) == (401, "wrong_credentials")
    tcp = await TcpClient.open(app.ports["gate-tcp"])
    reply = await tcp.call("auth.login", {"username": "hank", "password": "wrong password"})
    assert reply["error"] == {"code": "wrong_credentials", "message": "wrong username or password"}
    assert (await tcp.call("auth.nonce"))["error"]["code"] == "unauthorized"  # a failed login does not bind
    await tcp.close()


# Tokens


async def test_forged_and_expired_tokens_are_refused(app: App, http: Http) -> None:
    account = await register(http, "ivan")
    tcp = await TcpClient.open(app.ports["gate-tcp"])
    for name, token in forgeries(app, account["uid"], account["token"]).items():
        reply = await tcp.call("auth.nonce", token=token)
        assert reply["error"]["code"] == "unauthorized", name
        reply = await tcp.call("session.bind", {"token": token})
        assert reply["error"]["code"] == "unauthorized", name
        status, answer, headers = await http.post("/auth/nonce", token=token)
        assert (status, answer["error"]["code"]) == (401, "unauthorized"), name
        assert headers["WWW-Authenticate"].startswith("Bearer"), name
    assert (await tcp.call("auth.nonce", token=account["token"]))["ok"]
    assert (await tcp.call("sys.echo", {"x": 1}, token="garbage"))["ok"]  # no login needed: a bad token is moot
    await tcp.close()


async def test_http_nonce_needs_a_bearer_token(http: Http) -> None:
    account = await register(http, "judy")
    for headers in ({}, {"Authorization": account["token"]}, {"Authorization": f"Basic {account['token']}"}):
        async with http.session.post(http.base + "/auth/nonce", headers=headers) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "unauthorized"
    status, body, _ = await http.post("/auth/nonce", token=account["token"])
    assert status == 200 and set(body) == {"nonce", "expires_in"} and body["expires_in"] == 30


async def test_refresh(app: App, http: Http) -> None:
    account = await register(http, "kate")
    status, body, _ = await http.post("/auth/refresh", token=account["token"])
    assert status == 200 and body["uid"] == account["uid"]
    assert app.resources.extra["tokens"].verify(body["token"]) == account["uid"]
    status, body, _ = await http.post("/auth/refresh", token="garbage")
    assert status == 401


async def test_session_bind_then_a_login_required_call(app: App, http: Http) -> None:
    account = await register(http, "liam")
    ws = await WsClient.open(app.ports["ws"], binary=False)
    assert (await ws.call("auth.nonce"))["error"]["code"] == "unauthorized"
    assert await ws.call("session.bind", {"token": account["token"]}) == {
        "id": 2,
        "ok": True,
        "data": {"uid": account["uid"]},
    }
    reply = await ws.call("auth.nonce")
    assert reply["ok"], reply
    identity = await redeem_nonce(app.resources.redis, app.resources.keys, reply["data"]["nonce"])
    assert identity is not None and identity["uid"] == account["uid"]
    assert (await ws.call("session.bind", {}))["error"]["code"] == "bad_request"
    await ws.close()


# Nonces


async def test_concurrent_redeems_of_one_nonce(app: App, http: Http) -> None:
    account = await register(http, "mia")
    _, body, _ = await http.post("/auth/nonce", token=account["token"])
    keys = app.resources.keys
    edges = [app.resources.open_redis() for _ in range(4)]  # like chat edges, each with its own connections
    try:
        results = await asyncio.gather(*(redeem_nonce(edges[i % 4], keys, body["nonce"]) for i in range(200)))
    finally:
        for edge in edges:
            await edge.aclose()
    winners = [{key: value for key, value in r.items() if key != "issued_ms"} for r in results if r is not None]
    assert winners == [{"uid": account["uid"], "name": "mia", "world": 1, "family": None}]
    assert await redeem_nonce(app.resources.redis, keys, body["nonce"]) is None


async def test_nonce_expires(app_factory: Callable[..., Any], client_session: aiohttp.ClientSession) -> None:
    app = await app_factory(auth={"nonce_ttl": 0.05})
    http = Http(client_session, app.ports["http"])
    account = await register(http, "noah")
    _, body, _ = await http.post("/auth/nonce", token=account["token"])
    assert body["expires_in"] == 0.05
    redis, keys = app.resources.redis, app.resources.keys
    async with asyncio.timeout(5):
        while await redis.exists(keys.nonce(body["nonce"])):
            await asyncio.sleep(0.01)
    assert await redeem_nonce(redis, keys, body["nonce"]) is None


async def test_redeeming_what_is_not_a_nonce(app: App) -> None:
    redis, keys = app.resources.redis, app.resources.keys
    await redis.set(keys.nonce("broken"), "{not json")
    await redis.set(keys.nonce("listed"), "[1, 2]")
    for nonce in ("", "x" * 129, "unknown", "broken", "listed"):
        assert await redeem_nonce(redis, keys, nonce) is None, nonce
    assert not await redis.exists(keys.nonce("broken"), keys.nonce("listed"))  # redeemed all the same


# Failed-login limits


async def test_failed_logins_per_username(
    app_factory: Callable[..., Any], client_session: aiohttp.ClientSession
) -> None:
    app = await app_factory(auth={"max_failures_user": 3, "failure_window": 60.0})
    http = Http(client_session, app.ports["http"])
    await register(http, "olga")
    wrong = {"username": "olga", "password": "wrong password"}
    right = {"username": "olga", "password": PASSWORD}
    for body, expected in ((wrong, 401), (wrong, 401), (right, 200), (wrong, 401)):  # a success takes its count back
        assert (await http.post("/auth/login", body))[0] == expected
    status, answer, headers = await http.post("/auth/login", right)
    assert (status, answer["error"]["code"]) == (429, "rate_limited")
    assert 0 < int(headers["Retry-After"]) <= 60
    tcp = await TcpClient.open(app.ports["gate-tcp"])
    reply = await tcp.call("auth.login", right)
    assert reply["error"]["code"] == "rate_limited"
    await tcp.close()
    assert (await http.post("/auth/register", {"username": "olga2", "password": PASSWORD}))[0] == 201
    assert (await http.post("/auth/login", {"username": "olga2", "password": PASSWORD}))[0] == 200


async def test_failed_logins_per_address(
    app_factory: Callable[..., Any], client_session: aiohttp.ClientSession
) -> None:
    app = await app_factory(auth={"max_failures_addr": 4})
    http = Http(client_session, app.ports["http"])
    await register(http, "pete")
    for name in ("u1", "u2", "u3", "u4"):
        assert (await http.post("/auth/login", {"username": name, "password": PASSWORD}))[0] == 401
    status, answer, _ = await http.post("/auth/login", {"username": "pete", "password": PASSWORD})
    assert (status, answer["error"]["code"]) == (429, "rate_limited")
    # the gate counts by the connection's address too (127.0.0.1 here, like the HTTP client)
    tcp = await TcpClient.open(app.ports["gate-tcp"])
    assert (await tcp.call("auth.login", {"username": "pete", "password": PASSWORD}))["error"]["code"] == "rate_limited"
    await tcp.close()


# The secret


async def test_generated_secret_persists_across_restarts(
    config_factory: Callable[..., Config], client_session: aiohttp.ClientSession
) -> None:
    config = config_factory()
    first = App(config)
    await first.start()
    try:
        account = await register(Http(client_session, first.ports["http"]), "quinn")
    finally:
        await first.stop()
    path = config.data_path / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_bytes()
    second = App(config)
    await second.start()
    try:
        tcp = await TcpClient.open(second.ports["gate-tcp"])
        assert (await tcp.call("session.bind", {"token": account["token"]}))["data"] == {"uid": account["uid"]}
        await tcp.close()
    finally:
        await second.stop()
    assert path.read_bytes() == key


async def test_a_short_secret_file_stops_start_up(config_factory: Callable[..., Config]) -> None:
    config = config_factory()
    config.data_path.mkdir(parents=True)
    (config.data_path / SECRET_FILE).write_text("too short\n")
    app = App(config)
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        await app.start()


async def test_a_configured_secret_signs_tokens(app_factory: Callable[..., Any]) -> None:
    secret = "s" * 32
    app = await app_factory(auth={"secret": secret})
    token = jwt.encode({"sub": "7", "iat": int(time.time()), "exp": int(time.time()) + 60, "iss": "gameserver"}, secret)
    tcp = await TcpClient.open(app.ports["gate-tcp"])
    assert (await tcp.call("session.bind", {"token": token}))["data"] == {"uid": 7}
    await tcp.close()
    assert not (app.config.data_path / SECRET_FILE).exists()


# Roles


async def test_without_the_auth_role_tokens_still_work(
    app_factory: Callable[..., Any], client_session: aiohttp.ClientSession
) -> None:
    auth_app = await app_factory()
    account = await register(Http(client_session, auth_app.ports["http"]), "rosa")
    worker = await app_factory(auth_app.config.replace(server={"roles": ["gate", "worker"]}))
    tcp = await TcpClient.open(worker.ports["gate-tcp"])
    assert (await tcp.call("session.bind", {"token": account["token"]}))["ok"]
    reply = await tcp.call("auth.login", {"username": "rosa", "password": PASSWORD})
    assert reply["error"]["code"] == "unknown_function"
    await tcp.close()
    status, _, _ = await Http(client_session, worker.ports["http"]).post("/auth/login", {"username": "rosa"})
    assert status == 404


async def test_login_rehashes_a_password_hashed_at_another_cost(
    app_factory: Callable[..., Any], client_session: aiohttp.ClientSession
) -> None:
    from gameserver.features.identity.accounts import account_by_username

    app = await app_factory()
    await register(Http(client_session, app.ports["http"]), "sam")
    dearer = await app_factory(app.config.replace(auth={"hash_time_cost": 2}))
    status, _, _ = await Http(client_session, dearer.ports["http"]).post(
        "/auth/login", {"username": "sam", "password": PASSWORD}
    )
    assert status == 200
    async with dearer.resources.db.transaction() as tx:
        account = await account_by_username(tx, "sam")
    assert account is not None and ",t=2," in account.password_hash
