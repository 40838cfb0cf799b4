"""Mail through the gate and the admin route, in-process (SQLite + in-process store): logins from auth.register,
the mail.new push to an online recipient, POST /mail/send with and without an admin key."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from gameserver.app import App
from tests.clients import TcpClient, WsClient, http_url

ADMIN_KEY = "test-admin-key-0123456789"


@pytest.fixture
async def app(app_factory: Callable[..., Any]) -> App:
    started: App = await app_factory(mail={"admin_key": ADMIN_KEY})
    return started


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def register(client: TcpClient | WsClient, name: str) -> tuple[int, str]:
    reply = await client.call("auth.register", {"username": name, "password": "correct horse battery"})
    assert reply["ok"], reply
    return reply["data"]["uid"], reply["data"]["token"]


async def admin_send(
    session: aiohttp.ClientSession, app: App, body: dict[str, Any], key: str | None = ADMIN_KEY
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    url = http_url(app, "/mail/send")
    async with session.post(url, data=json.dumps(body), headers=headers) as response:
        return response.status, await response.json()


async def replies_to(client: TcpClient | WsClient, count: int) -> list[dict[str, Any]]:
    """The next ``count`` replies, skipping pushes (a registered connection is bound: it gets mail.new)."""
    replies = []
    while len(replies) < count:
        message = await client.recv()
        if "id" in message:
            replies.append(message)
    return replies


async def test_mail_functions_need_a_login(app: App) -> None:
    client = await TcpClient.open(app.ports["gate-tcp"])
    for fn, args in [("mail.list", {}), ("mail.send", {"to": 1, "subject": "s", "body": "b"}), ("mail.claim", {})]:
        reply = await client.call(fn, args)
        assert reply["error"]["code"] == "unauthorized", fn
    await client.close()


async def test_send_push_list_read_over_the_gate(app: App) -> None:
    alice_client = await TcpClient.open(app.ports["gate-tcp"])
    bob_client = await WsClient.open(app.ports["ws"], binary=False)
    alice, alice_token = await register(alice_client, "alice")
    bob, bob_token = await register(bob_client, "bob")
    assert (await bob_client.call("session.bind", {"token": bob_token}))["ok"]

    sent = await alice_client.call(
        "mail.send", {"to": bob, "subject": "Hi Bob 👋", "body": "Let's play"}, token=alice_token
    )
    assert sent["ok"], sent
    mail_id = sent["data"]["mail_id"]
    assert isinstance(mail_id, str)

    push = await bob_client.recv()  # bound and online: the push arrives without asking
    assert push == {"event": "mail.new", "data": push["data"]} and "id" not in push
    assert push["data"]["mail_id"] == mail_id and push["data"]["from"] == alice

    listed = await bob_client.call("mail.list", {})
    assert listed["ok"] and listed["data"]["unread"] == 1
    [shown] = listed["data"]["mails"]
    assert {k: shown[k] for k in ("mail_id", "from", "subject", "unread")} == {
        "mail_id": mail_id,
        "from": alice,
        "subject": "Hi Bob 👋",
        "unread": True,
    }
    opened = await bob_client.call("mail.read", {"mail_id": mail_id})
    assert opened["data"]["body"] == "Let's play"
    assert (await bob_client.call("mail.list", {"page": 0, "size": 5}))["data"]["unread"] == 0
    bad = await bob_client.call("mail.read", {"mail_id": "../../../etc/passwd"})
    assert bad["error"]["code"] == "bad_request"
    bad = await bob_client.call("mail.send", {"to": "../1", "subject": "s", "body": "b"})
    assert bad["error"]["code"] == "bad_request"
    await alice_client.close()
    await bob_client.close()


async def test_admin_gift_is_claimed_once(app: App, session: aiohttp.ClientSession) -> None:
    client = await TcpClient.open(app.ports["gate-tcp"])
    uid, token = await register(client, "carol")
    items = [{"item": 1, "count": 50}, {"item": 3, "count": 2}]
    status, body = await admin_send(session, app, {"to": uid, "subject": "Welcome", "body": "🎁", "items": items})
    assert status == 200 and body["sent"] == 1
    mail_id = body["mail_id"]

    # Ten claims in flight at once on one connection, and as many on a second one.
    other = await WsClient.open(app.ports["ws"])
    for n in range(10):
        client.send({"id": 100 + n, "fn": "mail.claim", "args": {"mail_id": mail_id}, "token": token})
        await other.send({"id": 200 + n, "fn": "mail.claim", "args": {"mail_id": mail_id}, "token": token})
    replies = await replies_to(client, 10) + await replies_to(other, 10)
    await other.close()
    oks = [r for r in replies if r["ok"]]
    assert len(oks) == 1 and oks[0]["data"] == {"mail_id": mail_id, "items": items}
    assert {r["error"]["code"] for r in replies if not r["ok"]} == {"already_claimed"}
    inventory = await client.call("inventory.get", {}, token=token)
    assert inventory["data"]["items"] == [
        {"item": 1, "name": "COIN", "count": 50},
        {"item": 3, "name": "ENERGY", "count": 2},
    ]
    await client.close()


async def test_a_full_mailbox_refuses_players_not_the_admin_route(
    app_factory: Callable[..., Any], session: aiohttp.ClientSession
) -> None:
    app = await app_factory(mail={"admin_key": ADMIN_KEY, "max_messages": 1})
    client = await TcpClient.open(app.ports["gate-tcp"])
    alice, alice_token = await register(client, "alice")
    bob, _ = await register(client, "bob")
    mail = {"to": bob, "subject": "hi", "body": ""}
    first, second = [await client.call("mail.send", mail, token=alice_token) for _ in range(2)]
    assert first["ok"], first
    assert second["error"] == {"code": "mailbox_full", "message": "the recipient's mailbox is full"}
    asked = await client.call("friends.request", {"to": bob}, token=alice_token)
    assert asked["error"]["code"] == "mailbox_full"
    status, body = await admin_send(session, app, {"to": bob, "subject": "Compensation", "body": "sorry"})
    assert status == 200 and body["sent"] == 1
    await client.close()


async def test_admin_mail_to_a_world(app: App, session: aiohttp.ClientSession) -> None:
    client = await TcpClient.open(app.ports["gate-tcp"])
    tokens = [(await register(client, f"player{n}"))[1] for n in range(3)]
    status, body = await admin_send(session, app, {"world": 1, "subject": "Maintenance", "body": "at 3:00"})
    assert (status, body) == (200, {"sent": 3})
    for token in tokens:
        listed = await client.call("mail.list", {}, token=token)
        assert [m["subject"] for m in listed["data"]["mails"]] == ["Maintenance"]
        assert listed["data"]["mails"][0]["from"] == 0
    assert await admin_send(session, app, {"world": 99, "subject": "x", "body": ""}) == (200, {"sent": 0})
    await client.close()


async def test_admin_route_refusals(app: App, session: aiohttp.ClientSession) -> None:
    body = {"to": 1, "subject": "x", "body": ""}
    status, reply = await admin_send(session, app, body, key=None)
    assert (status, reply["error"]["code"]) == (401, "unauthorized")
    status, reply = await admin_send(session, app, body, key="wrong")
    assert (status, reply["error"]["code"]) == (401, "unauthorized")
    status, reply = await admin_send(session, app, {"to": 424242, "subject": "x", "body": ""})
    assert (status, reply["error"]["code"]) == (404, "player_not_found")
    for bad in [
        {"world": "../../etc", "subject": "x", "body": ""},
        {"to": "1/../2", "subject": "x", "body": ""},
        {"world": -1, "subject": "x", "body": ""},
        {"to": 1, "world": 1, "subject": "x", "body": ""},
        {"subject": "x", "body": ""},
        {"to": 1, "subject": "x", "body": "", "items": [{"item": 12345, "count": 1}]},
        {"to": 1, "subject": "x", "body": "", "sneaky": True},
    ]:
        status, reply = await admin_send(session, app, bad)
        assert (status, reply["error"]["code"]) == (400, "bad_request"), bad


async def test_admin_route_without_a_key_says_why(
    app_factory: Callable[..., Any], session: aiohttp.ClientSession
) -> None:
    keyless: App = await app_factory()
    status, reply = await admin_send(session, keyless, {"to": 1, "subject": "x", "body": ""})
    assert status == 403 and reply["error"]["code"] == "forbidden"
    assert "mail.admin_key" in reply["error"]["message"]
