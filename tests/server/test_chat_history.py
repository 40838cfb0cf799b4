"""Chat history in one process (docs/PROTOCOL.md, "Chat history"): kept per channel, capped, sent on join when there
is some, asked for with HISTORY or chat.history."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from gameserver.app import App
from gameserver.features.chatedge import Chat
from tests.clients import ChatClient
from tests.server.social import chat_login, register

AppFactory = Callable[..., Awaitable[App]]


def chat_of(app: App) -> Chat:
    chat = app.resources.extra["chat"]
    assert isinstance(chat, Chat)
    return chat


async def test_a_late_joiner_gets_the_last_lines_then_asks_for_more(app_factory: AppFactory) -> None:
    app = await app_factory(chat={"history": 5, "history_on_join": 3})
    gate_a, _, _ = await register(app)
    chat_a = await chat_login(app, gate_a)
    sent = []
    for n in range(7):
        await chat_a.send("PUBLIC", f"line {n}")
        sent.append((await chat_a.recv_message())[1])
    await chat_of(app).history.flush()
    gate_b, _, _ = await register(app)
    reply = await gate_b.call("auth.nonce")
    chat_b = await ChatClient.tcp(app.ports["chat-tcp"])
    await chat_b.send("LOGIN", reply["data"]["nonce"])
    assert (await chat_b.recv())[0] == "OK"
    command, payload = await chat_b.recv()
    assert command == "HISTORY"
    joined = json.loads(payload)
    assert joined == {"channel": "public", "lines": sent[4:]}  # the last 3, oldest first, as they were sent
    await chat_b.send("HISTORY", "public 10")
    command, payload = await chat_b.recv()
    assert (command, json.loads(payload)["lines"]) == ("HISTORY", sent[2:])  # capped at 5
    await chat_b.send("HISTORY", "family")
    assert await chat_b.recv() == ("ERROR", "bad_request")  # not in a family
    await chat_b.send("HISTORY", "public x")
    assert await chat_b.recv() == ("ERROR", "bad_request")
    lines = (await gate_b.call("chat.history", {"count": 2}))["data"]["lines"]
    assert lines == sent[5:]
    assert (await gate_b.call("chat.history", {"channel": "family"}))["error"]["code"] == "not_in_family"
    assert len({line["id"] for line in sent}) == 7


async def test_nothing_is_sent_on_join_when_there_is_no_history(app: App) -> None:
    gate, _, _ = await register(app)
    chat = await chat_login(app, gate)
    await chat.send("PING")
    assert await chat.recv() == ("PONG", "")
    await chat.send("HISTORY", "public")
    assert await chat.recv() == ("HISTORY", '{"channel":"public","lines":[]}')


async def test_history_off_keeps_nothing(app_factory: AppFactory) -> None:
    app = await app_factory(chat={"history": 0})
    gate, _, _ = await register(app)
    chat = await chat_login(app, gate)
    await chat.send("PUBLIC", "gone")
    await chat.recv_message()
    await chat_of(app).history.flush()
    assert (await gate.call("chat.history"))["data"] == {"lines": []}
