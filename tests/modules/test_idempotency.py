"""Idempotent writes (gameserver/dispatch/idempotency.py) through the real dispatcher, on SQLite and MariaDB: a repeat
with the same key and caller gets the stored reply without running the handler again, from another connection or
another process, and of concurrent twins exactly one applies; failures store nothing; side effects outside the
database (a mail) happen once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from enums import ItemKind
from gameserver.dispatch.idempotency import Idempotency, idempotency
from gameserver.storage.sql import Sql
from gameserver.testing import Harness, harness
from modules.inventory.items import add_items, counts
from modules.mail.handlers import send


async def give(db: Sql, uid: int, coins: int) -> None:
    async with db.transaction() as tx:
        await add_items(tx, uid, [(ItemKind.COIN, coins)])


async def coins(db: Sql, uid: int) -> int:
    async with db.read() as conn:
        return (await counts(conn, uid)).get(ItemKind.COIN, 0)


def discard(count: int = 1) -> dict[str, Any]:
    return {"item": int(ItemKind.COIN), "count": count}


@pytest.fixture
async def other(game: Harness, db_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """A second server process on the same database (its own pools, sessions and data dir)."""
    async with harness(tmp_path / "other", db={"url": db_url}) as second:
        yield second


async def test_a_repeat_gets_the_stored_reply_and_writes_nothing(game: Harness, other: Harness) -> None:
    uid = await game.player("ann")
    await give(game.db, uid, 10)
    first = await game.request("inventory.discard", discard(), uid=uid, idem="k1")
    assert first["data"] == {"item": ItemKind.COIN, "count": 9}
    again = await game.request("inventory.discard", discard(), uid=uid, idem="k1")
    elsewhere = await other.request("inventory.discard", discard(), uid=uid, idem="k1")  # another process
    assert again["data"] == elsewhere["data"] == first["data"]
    assert await coins(game.db, uid) == 9
    assert (await game.request("inventory.discard", discard(), uid=uid, idem="k2"))["data"]["count"] == 8
    assert (await game.request("inventory.discard", discard(), uid=uid))["data"]["count"] == 7  # no key: runs
    bob = await game.player("bob")  # the same key from another caller is another request
    await give(game.db, bob, 5)
    assert (await game.request("inventory.discard", discard(), uid=bob, idem="k1"))["data"]["count"] == 4


async def test_concurrent_twins_apply_once(game: Harness, other: Harness) -> None:
    uid = await game.player("cy")
    await give(game.db, uid, 100)
    replies = await asyncio.gather(
        *((game if n % 2 else other).request("inventory.discard", discard(3), uid=uid, idem="twin") for n in range(12))
    )
    assert [reply["ok"] for reply in replies] == [True] * 12, replies
    assert {reply["data"]["count"] for reply in replies} == {97}
    assert await coins(game.db, uid) == 97


async def test_a_failure_stores_nothing(game: Harness) -> None:
    uid = await game.player("dee")
    refused = await game.request("inventory.discard", discard(2), uid=uid, idem="k")
    assert refused["error"]["code"] == "not_enough_items"
    await give(game.db, uid, 5)
    assert (await game.request("inventory.discard", discard(2), uid=uid, idem="k"))["data"]["count"] == 3


async def test_writes_and_the_key_commit_together(game: Harness) -> None:
    """A handler that writes and then fails leaves neither its writes nor a stored reply."""
    uid = await game.player("eve")
    calls = 0

    async def flaky() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await game.db.run(lambda tx: add_items(tx, uid, [(ItemKind.COIN, 1)]))
        async with game.db.transaction() as tx:  # joins the request's transaction too
            await add_items(tx, uid, [(ItemKind.DIAMOND, 1)])
        if calls == 1:
            raise RuntimeError("crash after the writes")
        return {"calls": calls}

    keys = Idempotency(game.db)
    with pytest.raises(RuntimeError):
        await keys.call(str(uid), "test.flaky", "k", flaky)
    assert await coins(game.db, uid) == 0
    assert await keys.call(str(uid), "test.flaky", "k", flaky) == {"calls": 2}
    assert await keys.call(str(uid), "test.flaky", "k", flaky) == {"calls": 2}
    async with game.db.read() as conn:
        assert await counts(conn, uid) == {ItemKind.COIN: 1, ItemKind.DIAMOND: 1}


async def test_a_mail_is_sent_once_per_key_even_when_the_commit_is_lost(game: Harness) -> None:
    """mail.send writes a Maildir file, outside the transaction: its id comes from the key, so a run after a lost
    commit finds the mail instead of sending a second one."""
    ann, bob = await game.player("ann"), await game.player("bob")
    game.session(bob)  # bob is online: pushes to him land in its `pushes`
    assert game.app.dispatcher is not None and game.app.dispatcher.idempotency is not None
    keys = game.app.dispatcher.idempotency
    lost = True

    async def send_then_crash() -> Any:
        result = await send(bob, "hi", "once", **game.ctx(ann))
        if lost:
            raise RuntimeError("the commit is lost")
        return result

    with pytest.raises(RuntimeError):
        await keys.call(str(ann), "mail.send", "m1", send_then_crash)
    lost = False
    first = await keys.call(str(ann), "mail.send", "m1", send_then_crash)
    reply = await game.request("mail.send", {"to": bob, "subject": "hi", "body": "once"}, uid=ann, idem="m1")
    assert reply["data"] == first
    listed = await game.request("mail.list", uid=bob)
    assert [m["mail_id"] for m in listed["data"]["mails"]] == [first["mail_id"]]
    assert [event for event, _ in game.session(bob).pushes] == ["mail.new"]  # announced once


async def test_expired_keys_are_swept(game: Harness) -> None:
    keys = Idempotency(game.db, ttl=60)
    assert await keys.call("1", "f.g", "old", _answer) == {"n": 1}
    assert await keys.call("1", "f.g", "new", _answer) == {"n": 1}
    await game.db.execute(idempotency.update().where(idempotency.c.key == "old").values(created_at=0))
    assert await keys.sweep() == 1
    rows = await game.db.fetch_all(sa.select(idempotency.c.key))
    assert [row.key for row in rows] == ["new"]
    scope = "conn:" + "a-very-long-host-name." * 5 + "-12"  # longer than the column: stored as a digest
    assert await keys.call(scope, "f.g", "k", _answer) == await keys.call(scope, "f.g", "k", _other) == {"n": 1}


async def _other() -> dict[str, int]:
    return {"n": 2}


async def _answer() -> dict[str, int]:
    return {"n": 1}
