"""account, family, friends and inventory through the gate: logins from auth.register, the chat resource
injected when the process runs chat, exact replies."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from gameserver import metrics
from gameserver.app import App
from tests.clients import TcpClient, WsClient


async def register(client: TcpClient, name: str) -> tuple[int, str]:
    reply = await client.call("auth.register", {"username": name, "password": "correct horse battery"})
    assert reply["ok"], reply
    return reply["data"]["uid"], reply["data"]["token"]


async def test_every_module_function_needs_a_login(app: App) -> None:
    client = await TcpClient.open(app.ports["gate-tcp"])
    names = [name for name in app.table if name.split(".")[0] in {"account", "family", "friends", "inventory", "mail"}]
    assert len(names) == 22
    for fn in names:
        reply = await client.call(fn, {})
        assert reply["error"]["code"] == "unauthorized", fn
    await client.close()


async def test_profile_family_friends_inventory(app: App, caplog: pytest.LogCaptureFixture) -> None:
    assert "chat" in app.resources.extra  # this process runs chat: family moves call chat.set_family
    client = await TcpClient.open(app.ports["gate-tcp"])
    alice, alice_token = await register(client, "alice")
    bob, bob_token = await register(client, "bob")

    async def call(token: str, fn: str, args: dict[str, object] | None = None) -> dict[str, object]:
        reply = await client.call(fn, args or {}, token=token)
        return reply

    profile = await call(alice_token, "account.profile")
    assert profile["data"] == {"uid": alice, "name": "alice", "world": 1, "family": None}

    created = await call(alice_token, "family.create", {"name": "Dragons"})
    family_id = created["data"]["family_id"]  # type: ignore[index]
    assert created == {"id": created["id"], "ok": True, "data": {"family_id": family_id, "name": "Dragons", "world": 1}}
    joined = await call(bob_token, "family.join", {"family_id": family_id})
    assert joined["ok"], joined
    members = await call(bob_token, "family.members")
    assert members["data"]["members"] == [  # type: ignore[index]
        {"uid": alice, "name": "alice", "role": 3},
        {"uid": bob, "name": "bob", "role": 1},
    ]
    taken = await call(bob_token, "family.create", {"name": "Dragons"})
    assert taken["error"] == {"code": "already_in_family", "message": "leave your family first"}
    bad = await call(bob_token, "family.join", {"family_id": "1"})
    assert bad["error"]["code"] == "bad_request"  # type: ignore[index]

    asked = await call(alice_token, "friends.request", {"to": bob})
    assert asked["ok"] and asked["data"]["accepted"] is False  # type: ignore[index]
    accepted = await call(bob_token, "friends.accept", {"sender": alice})
    assert accepted["data"] == {"uid": alice, "name": "alice"}
    listed = await call(alice_token, "friends.list")
    [friend] = listed["data"]["friends"]  # type: ignore[index]
    assert listed["data"]["requests"] == []  # type: ignore[index]
    assert {key: friend[key] for key in ("uid", "name")} == {"uid": bob, "name": "bob"}
    assert set(friend) == {"uid", "name", "online", "last_seen"}  # presence (issue 16)

    assert (await call(alice_token, "inventory.get"))["data"] == {"items": []}
    empty = await call(alice_token, "inventory.discard", {"item": 1, "count": 1})
    assert empty["error"]["code"] == "not_enough_items"  # type: ignore[index]
    await client.close()
    assert not [r for r in caplog.records if r.name == "modules.family"]  # chat.set_family did not fail


async def test_a_transaction_that_keeps_losing_its_lock_answers_unavailable(
    app_factory: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """db.run() gives up after ``db.retries``: the client gets ``unavailable`` (nothing was written, it may try
    again), the log one warning and no traceback. The lock conflict is real: another writer holds SQLite's write
    lock past the busy timeout on every attempt."""
    app: App = await app_factory(db={"query_timeout": 0.2, "retries": 1, "retry_delay": 0.0})
    client = await TcpClient.open(app.ports["gate-tcp"])
    _, token = await register(client, "alice")
    discard = {"item": 1, "count": 1}
    retries_before = metrics.REGISTRY.get_sample_value("gameserver_db_retries_total")
    with caplog.at_level(logging.WARNING):
        async with app.resources.db.transaction() as tx:
            await tx.execute(sa.text("SELECT 1"))  # BEGIN IMMEDIATE took the write lock
            busy = await client.call("inventory.discard", discard, token=token)
        assert busy["error"] == {"code": "unavailable", "message": "the database is busy, try again"}
        assert metrics.REGISTRY.get_sample_value("gameserver_db_retries_total") == retries_before + 1  # db.retries
        again = await client.call("inventory.discard", discard, token=token)  # the lock is free: runs
        assert again["error"]["code"] == "not_enough_items"
    await client.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "gameserver.dispatch.dispatcher"]
    assert len(warnings) == 1 and warnings[0].startswith("inventory.discard: database busy (lock conflict)")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_an_idempotency_key_over_the_wire_across_reconnects(app: App) -> None:
    """docs/PROTOCOL.md "Idempotency keys": family.create sent again with its key, on a new connection (a client
    that lost the first), answers the first reply and creates nothing; a WebSocket JSON client the same."""
    first = await TcpClient.open(app.ports["gate-tcp"])
    uid, token = await register(first, "kim")
    created = await first.call("family.create", {"name": "Owls"}, token=token, idem="create-owls-1")
    await first.close()
    again = await TcpClient.open(app.ports["gate-tcp"])
    repeat = await again.call("family.create", {"name": "Owls"}, token=token, idem="create-owls-1")
    assert repeat["data"] == created["data"] and repeat["ok"]
    other = await again.call("family.create", {"name": "Owls"}, token=token, idem="create-owls-2")
    assert other["error"]["code"] == "already_in_family"  # a new key runs: the first create did happen
    bad = await again.call("family.leave", {}, token=token, idem=7)
    assert bad["error"] == {"code": "bad_request", "message": "idem must be a string of 1 to 128 characters"}
    await again.close()
    ws = await WsClient.open(app.ports["ws"], binary=False)  # JSON text frames
    repeat = await ws.call("family.create", {"name": "Owls"}, token=token, idem="create-owls-1")
    assert repeat["data"] == created["data"]
    await ws.close()
    assert await app.resources.db.fetch_value(sa.text("SELECT COUNT(*) FROM families")) == 1
    members = await app.resources.db.fetch_value(
        sa.text("SELECT COUNT(*) FROM family_members WHERE uid = :u"), {"u": uid}
    )
    assert members == 1
