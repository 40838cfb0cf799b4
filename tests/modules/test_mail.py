"""modules/mail: list/read/delete/send/claim called as the dispatcher would, on SQLite and MariaDB."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from enums import ItemKind, MailKind
from gameserver.config import Config
from gameserver.errors import BadRequest, PlayerNotFound, RateLimited
from gameserver.features.mailbox import SYSTEM, Item, Mail, MailboxFull, MailNotFound, MailStore
from gameserver.keys import Keys
from gameserver.storage.sql import Sql
from modules.inventory.items import counts
from modules.mail.handlers import AlreadyClaimed, NothingToClaim, claim, count_send, delete, list_mails, read, send
from tests.modules.conftest import Pushes, open_db

Ctx = Callable[..., dict[str, Any]]
Player = Callable[..., Any]
GIFT = (Item(ItemKind.COIN, 100), Item(ItemKind.DIAMOND, 5))


async def gift(store: MailStore, world: int, uid: int, items: tuple[Item, ...] = GIFT) -> str:
    sent = await store.deliver(world, uid, Mail(MailKind.GIFT, SYSTEM, "System", "A gift", "enjoy", items))
    return sent.mail_id


async def owned(db: Sql, uid: int) -> dict[int, int]:
    async with db.read() as conn:
        return await counts(conn, uid)


async def test_send_list_read_delete(ctx: Ctx, player: Player, pushes: Pushes) -> None:
    alice, bob = await player("Alice"), await player("Bob")
    sent = await send(bob, "Hello 你好", "Body ✨\nline two", **ctx(alice))
    mail_id = sent["mail_id"]

    [(event, data)] = pushes.of(bob)
    assert event == "mail.new"
    assert data["mail_id"] == mail_id and data["from"] == alice and data["from_name"] == "Alice"
    assert data["subject"] == "Hello 你好" and data["unread"] is True and "body" not in data

    listed = await list_mails(**ctx(bob))
    assert listed["unread"] == 1 and listed["total"] == 1
    [shown] = listed["mails"]
    assert {k: shown[k] for k in ("mail_id", "from", "subject", "unread", "kind")} == {
        "mail_id": mail_id,
        "from": alice,
        "subject": "Hello 你好",
        "unread": True,
        "kind": MailKind.PLAYER,
    }
    assert (await list_mails(**ctx(alice)))["mails"] == []

    opened = await read(mail_id, **ctx(bob))
    assert opened["body"] == "Body ✨\nline two" and opened["unread"] is False
    assert (await list_mails(**ctx(bob)))["unread"] == 0

    with pytest.raises(MailNotFound):
        await read(mail_id, **ctx(alice))  # not in Alice's box
    assert await delete(mail_id, **ctx(bob)) == {"mail_id": mail_id}
    with pytest.raises(MailNotFound) as info:
        await delete(mail_id, **ctx(bob))
    assert info.value.code == "mail_not_found"


async def test_paging_newest_first(ctx: Ctx, player: Player) -> None:
    alice, bob = await player("Alice"), await player("Bob")
    for n in range(5):
        await send(bob, f"m{n}", "", **ctx(alice))
    first = await list_mails(0, 2, **ctx(bob))
    last = await list_mails(2, 2, **ctx(bob))
    assert [m["subject"] for m in first["mails"]] == ["m4", "m3"]
    assert [m["subject"] for m in last["mails"]] == ["m0"]
    assert first["total"] == 5 and first["unread"] == 5
    for page, size in [(-1, 2), (0, 0), (0, 101)]:
        with pytest.raises(BadRequest):
            await list_mails(page, size, **ctx(bob))


async def test_send_refusals(ctx: Ctx, player: Player) -> None:
    alice = await player("Alice")
    with pytest.raises(PlayerNotFound) as info:
        await send(987654, "hi", "", **ctx(alice))
    assert info.value.code == "player_not_found"
    for subject, body in [("", "x"), ("x" * 101, ""), ("two\nlines", "")]:
        with pytest.raises(BadRequest):
            await send(987654, subject, body, **ctx(alice))
    with pytest.raises(BadRequest):
        await send(alice, "me", "", **ctx(alice))


async def test_send_rate_limit(ctx: Ctx, player: Player, config: Config) -> None:
    alice, bob = await player("Alice"), await player("Bob")
    limited = config.replace(modules={"mail": {"send_rate": 2}})
    for _ in range(2):
        await send(bob, "hi", "", **ctx(alice, config=limited))
    with pytest.raises(RateLimited) as info:
        await send(bob, "hi", "", **ctx(alice, config=limited))
    assert info.value.code == "rate_limited"
    await send(alice, "other sender", "", **ctx(bob, config=limited))


async def test_send_to_a_full_mailbox(ctx: Ctx, player: Player, pushes: Pushes, tmp_path: Path) -> None:
    alice, bob, carol = await player("Alice"), await player("Bob"), await player("Carol")
    capped = MailStore(tmp_path / "capped", max_messages=2)
    await send(bob, "one", "", **ctx(alice, mail=capped))
    await send(bob, "two", "", **ctx(carol, mail=capped))
    with pytest.raises(MailboxFull) as info:
        await send(bob, "three", "", **ctx(alice, mail=capped))
    assert (info.value.code, info.value.message) == ("mailbox_full", "the recipient's mailbox is full")
    assert len(pushes.of(bob)) == 2  # no mail.new for a mail not delivered
    await gift(capped, 1, bob)  # the game's gifts still arrive
    assert (await list_mails(**ctx(bob, mail=capped)))["total"] == 3
    await send(alice, "the other way", "", **ctx(bob, mail=capped))  # only the recipient's box counts


async def test_deleting_makes_room(ctx: Ctx, player: Player, tmp_path: Path) -> None:
    alice, bob = await player("Alice"), await player("Bob")
    capped = MailStore(tmp_path / "capped", max_messages=1)
    first = await send(bob, "one", "", **ctx(alice, mail=capped))
    with pytest.raises(MailboxFull):
        await send(bob, "two", "", **ctx(alice, mail=capped))
    await delete(first["mail_id"], **ctx(bob, mail=capped))
    await send(bob, "two", "", **ctx(alice, mail=capped))


@pytest.mark.integration
async def test_send_rate_limit_on_real_redis(real_redis: tuple[Redis, str]) -> None:
    client, prefix = real_redis
    key = Keys(prefix).mail_sent(1)
    for _ in range(3):
        await count_send(client, key, 3, 60.0)
    with pytest.raises(RateLimited):
        await count_send(client, key, 3, 60.0)
    assert 0 < await client.pttl(key) <= 60_000


async def test_claim_moves_items_once(ctx: Ctx, player: Player, mail_store: MailStore, db: Sql) -> None:
    bob = await player("Bob", world=2)
    mail_id = await gift(mail_store, 2, bob)
    [shown] = (await list_mails(**ctx(bob)))["mails"]
    assert shown["claimed"] is False and shown["items"] == [{"item": 1, "count": 100}, {"item": 2, "count": 5}]

    result = await claim(mail_id, **ctx(bob))
    assert result == {"mail_id": mail_id, "items": [{"item": 1, "count": 100}, {"item": 2, "count": 5}]}
    assert await owned(db, bob) == {ItemKind.COIN: 100, ItemKind.DIAMOND: 5}
    with pytest.raises(AlreadyClaimed) as info:
        await claim(mail_id, **ctx(bob))
    assert info.value.code == "already_claimed"
    assert await owned(db, bob) == {ItemKind.COIN: 100, ItemKind.DIAMOND: 5}
    [shown] = (await list_mails(**ctx(bob)))["mails"]
    assert shown["claimed"] is True and shown["unread"] is False
    assert (await read(mail_id, **ctx(bob)))["claimed"] is True


async def test_claim_refusals(ctx: Ctx, player: Player, mail_store: MailStore) -> None:
    alice, bob = await player("Alice"), await player("Bob")
    plain = (await send(bob, "no gift", "", **ctx(alice)))["mail_id"]
    with pytest.raises(NothingToClaim) as info:
        await claim(plain, **ctx(bob))
    assert info.value.code == "nothing_to_claim"
    theirs = await gift(mail_store, 1, bob)
    with pytest.raises(MailNotFound):
        await claim(theirs, **ctx(alice))
    with pytest.raises(BadRequest):
        await claim("../../1/2/new/x", **ctx(bob))


async def test_fifty_simultaneous_claims_give_one_set_of_items(
    ctx: Ctx, player: Player, mail_store: MailStore, db: Sql, db_url: str, tmp_path: Path
) -> None:
    bob = await player("Bob")
    mail_id = await gift(mail_store, 1, bob)
    # Two engines on one database stand for two server processes claiming at the same moment.
    other = open_db(db_url, tmp_path)
    try:

        async def attempt(n: int) -> str:
            kwargs = ctx(bob, db=other if n % 2 else db)
            try:
                await claim(mail_id, **kwargs)
                return "ok"
            except AlreadyClaimed:
                return "already_claimed"

        results = await asyncio.gather(*(attempt(n) for n in range(50)))
    finally:
        await other.close()
    assert results.count("ok") == 1 and results.count("already_claimed") == 49
    assert await owned(db, bob) == {ItemKind.COIN: 100, ItemKind.DIAMOND: 5}


async def test_a_failed_claim_leaves_no_mark(
    ctx: Ctx, player: Player, mail_store: MailStore, db: Sql, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob = await player("Bob")
    mail_id = await gift(mail_store, 1, bob)

    async def broken(*args: object) -> None:
        raise RuntimeError("inventory down")

    monkeypatch.setattr("modules.mail.handlers.add_items", broken)
    with pytest.raises(RuntimeError):
        await claim(mail_id, **ctx(bob))
    monkeypatch.undo()
    assert await owned(db, bob) == {}
    await claim(mail_id, **ctx(bob))  # the mark rolled back with the items: claimable again
    assert await owned(db, bob) == {ItemKind.COIN: 100, ItemKind.DIAMOND: 5}
