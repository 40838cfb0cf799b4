"""Pushes across processes: two apps in this loop share the real Redis (a unique key prefix each test), one
SQLite database and one mail root, as two processes of one deployment would (``server.bus = "auto"`` with
``redis.url`` set). A player logs in through the gate (``auth.register`` / ``auth.login`` bind the
connection) and gets ``mail.new`` on whichever process holds the connection, once per connection."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from gameserver.app import App
from gameserver.bus.redispubsub import RedisBus
from tests.clients import TcpClient, WsClient

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
PUSH_TIMEOUT = 5.0
Client = TcpClient | WsClient
Apps = tuple[App, App]
_names = itertools.count(1)


@pytest.fixture
async def apps(app_factory: Callable[..., Awaitable[App]], redis_url: str, tmp_path: Path) -> AsyncIterator[Apps]:
    prefix = f"test:push:{uuid.uuid4().hex}:"
    shared = {
        "redis": {"url": redis_url, "prefix": prefix},
        "db": {"url": f"sqlite+aiosqlite:///{tmp_path / 'game.db'}"},
        "mail": {"root": str(tmp_path / "mail")},
        "auth": {"secret": "s" * 48},
    }
    a = await app_factory(server={"node_id": "a", "data_dir": str(tmp_path / "a")}, **shared)
    b = await app_factory(server={"node_id": "b", "data_dir": str(tmp_path / "b")}, **shared)
    yield a, b


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def connect(app: App, kind: str) -> Client:
    if kind == "tcp":
        return await TcpClient.open(app.ports["gate-tcp"])
    return await WsClient.open(app.ports["ws"], binary=kind == "ws-msgpack")


async def register(app: App, kind: str = "tcp") -> tuple[Client, int, str]:
    """A new player logged in on ``app``: their connection, uid and username. Bound once the reply is in."""
    client = await connect(app, kind)
    name = f"player{next(_names)}"
    reply = await client.call("auth.register", {"username": name, "password": PASSWORD})
    assert reply["ok"], reply
    return client, reply["data"]["uid"], name


async def login(app: App, name: str, kind: str = "tcp") -> Client:
    client = await connect(app, kind)
    reply = await client.call("auth.login", {"username": name, "password": PASSWORD})
    assert reply["ok"], reply
    return client


async def send_mail(sender: Client, to: int, subject: str) -> str:
    reply = await sender.call("mail.send", {"to": to, "subject": subject, "body": "hello"})
    assert reply["ok"], reply
    mail_id: str = reply["data"]["mail_id"]
    return mail_id


async def next_push(client: Client) -> dict[str, Any]:
    async with asyncio.timeout(PUSH_TIMEOUT):
        message: dict[str, Any] = await client.recv()
    assert "id" not in message, message  # nothing else was asked on this connection
    return message


async def numsub(admin: redis.asyncio.Redis, channel: str) -> int:
    [(_, count)] = await admin.pubsub_numsub(channel)
    return int(count)


async def wait_numsub(admin: redis.asyncio.Redis, channel: str, expected: int) -> None:
    """Until Redis counts ``expected`` subscribers of ``channel`` (unsubscribing has no confirmation to await)."""
    async with asyncio.timeout(PUSH_TIMEOUT):
        while await numsub(admin, channel) != expected:
            await asyncio.sleep(0.01)


async def test_one_fanout_per_process_shared_by_chat_and_pushes(apps: Apps) -> None:
    for app in apps:
        bus = app.resources.bus
        assert isinstance(bus, RedisBus)
        assert app.resources.extra["chat"].bus is bus.fanout


@pytest.mark.parametrize("kind", ["tcp", "ws-msgpack", "ws-json"])
async def test_mail_new_reaches_the_recipient_on_the_other_process(apps: Apps, kind: str) -> None:
    a, b = apps
    recipient, recipient_uid, _ = await register(b, kind)
    sender, sender_uid, sender_name = await register(a)
    mail_id = await send_mail(sender, recipient_uid, "across")
    push = await next_push(recipient)
    assert push == {"event": "mail.new", "data": push["data"]}
    assert (push["data"]["mail_id"], push["data"]["from"], push["data"]["subject"]) == (mail_id, sender_uid, "across")
    listed = await recipient.call("mail.list")
    assert [mail["mail_id"] for mail in listed["data"]["mails"]] == [mail_id]


async def test_closing_the_last_connection_drops_the_subscription(apps: Apps, admin: redis.asyncio.Redis) -> None:
    a, b = apps
    first, uid, name = await register(b)
    second = await login(b, name, "ws-json")
    channel = b.resources.keys.push_user(uid)
    assert await numsub(admin, channel) == 1  # subscribed before the login was answered; one per process
    await first.close()
    async with asyncio.timeout(PUSH_TIMEOUT):  # until b has seen the close
        while len(list(b.resources.sessions.of(uid))) != 1:
            await asyncio.sleep(0.01)
    assert await numsub(admin, channel) == 1  # the other connection still needs it
    await second.close()
    await wait_numsub(admin, channel, 0)
    assert len(b.resources.sessions) == 0


async def test_binding_to_another_player_moves_the_subscription(apps: Apps, admin: redis.asyncio.Redis) -> None:
    a, b = apps
    client, first_uid, _ = await register(b)
    second_on_a, second_uid, _ = await register(a)
    second_token = (await second_on_a.call("auth.refresh"))["data"]["token"]  # (the connection acts as them)
    rebound = await client.call("session.bind", {"token": second_token})
    assert rebound == {"id": rebound["id"], "ok": True, "data": {"uid": second_uid}}
    assert await numsub(admin, b.resources.keys.push_user(second_uid)) == 2  # a and b
    await wait_numsub(admin, b.resources.keys.push_user(first_uid), 0)
    sender, _, _ = await register(a)
    await send_mail(sender, first_uid, "to the first")
    await send_mail(sender, second_uid, "to the second")
    assert (await next_push(client))["data"]["subject"] == "to the second"  # the first one's came before it


async def test_a_player_online_on_both_processes_gets_each_push_once_per_connection(
    apps: Apps, admin: redis.asyncio.Redis
) -> None:
    a, b = apps
    on_b, uid, name = await register(b)
    connections = [on_b, await login(b, name, "ws-json"), await login(a, name, "ws-msgpack")]
    assert await numsub(admin, a.resources.keys.push_user(uid)) == 2  # one subscription per process
    senders = {a: (await register(a))[0], b: (await register(b))[0]}
    # Alternate the pushing process: a process that delivered its own push again (once at once, once through
    # its subscription) would show the copy before the next round's push, which comes from the other process
    # through Redis once every connection has the previous one.
    for round, app in enumerate((a, b, a, b)):
        mail_id = await send_mail(senders[app], uid, f"round {round}")
        for client in connections:
            push = await next_push(client)
            assert (push["event"], push["data"]["mail_id"]) == ("mail.new", mail_id), (round, client, push)
