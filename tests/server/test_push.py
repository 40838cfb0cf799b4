"""Server pushes through the gate in one process (gameserver/bus/local.py, gameserver/bus/redispubsub.py): the plain
in-process bus by default, and the Redis bus on the in-process store (``server.bus = "redis"`` without
``redis.url``), which takes the same path as between processes. Across two processes and the real Redis:
tests/integration/test_push_redis.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from gameserver.app import App
from gameserver.bus.local import LocalBus
from gameserver.bus.redispubsub import RedisBus
from tests.clients import TcpClient, WsClient
from tests.server.support import wait_until

PASSWORD = "correct horse battery"


async def register(client: TcpClient | WsClient, name: str) -> int:
    reply = await client.call("auth.register", {"username": name, "password": PASSWORD})
    assert reply["ok"], reply
    uid: int = reply["data"]["uid"]
    return uid


async def next_message(client: TcpClient | WsClient) -> dict[str, Any]:
    async with asyncio.timeout(5.0):
        message: dict[str, Any] = await client.recv()
    return message


async def test_in_one_process_the_bus_is_a_plain_call(app: App) -> None:
    bus = app.resources.bus
    assert type(bus) is LocalBus and app.resources.sessions.presence is None
    assert app.resources.extra["chat"].bus is bus
    sender, recipient = await TcpClient.open(app.ports["gate-tcp"]), await WsClient.open(app.ports["ws"])
    await register(sender, "sender")
    uid = await register(recipient, "recipient")
    sent = await sender.call("mail.send", {"to": uid, "subject": "s", "body": "b"})
    push = await next_message(recipient)
    assert push == {"event": "mail.new", "data": push["data"]} and push["data"]["mail_id"] == sent["data"]["mail_id"]
    await recipient.close()
    await wait_until(lambda: len(app.resources.sessions) == 1)  # the sender's


async def test_redis_bus_in_one_process_delivers_once(app_factory: Callable[..., Awaitable[App]]) -> None:
    app = await app_factory(server={"bus": "redis"})  # on the in-process store
    bus = app.resources.bus
    assert isinstance(bus, RedisBus) and app.resources.extra["chat"].bus is bus.fanout
    sender, recipient = await TcpClient.open(app.ports["gate-tcp"]), await TcpClient.open(app.ports["gate-tcp"])
    await register(sender, "sender")
    uid = await register(recipient, "recipient")
    channel = app.resources.keys.push_user(uid)
    assert channel in bus.fanout.receivers
    sent = await sender.call("mail.send", {"to": uid, "subject": "s", "body": "b"})
    push = await next_message(recipient)
    assert push["event"] == "mail.new" and push["data"]["mail_id"] == sent["data"]["mail_id"]

    # The push has come back through the subscription once this probe has (one publisher, one subscriber,
    # both in order): by then a second copy would have been written before the reply asked for below.
    probe = asyncio.get_running_loop().create_future()
    bus.fanout.subscribe(channel + ".probe", lambda _channel, payload: probe.set_result(payload))
    assert await bus.fanout.subscribed([channel + ".probe"], 5.0)
    bus.fanout.publish(channel + ".probe", b"after")
    assert await asyncio.wait_for(probe, 5.0) == b"after"
    recipient.send({"id": 99, "fn": "sys.echo", "args": {}})
    assert await next_message(recipient) == {"id": 99, "ok": True, "data": {}}

    await recipient.close()
    await wait_until(lambda: channel not in bus.fanout.receivers)
