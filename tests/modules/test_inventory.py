"""modules/inventory: items by ItemKind id; counts never go negative, even under concurrent removals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from enums import ItemKind
from gameserver.errors import BadRequest
from gameserver.storage.sql import Sql
from modules.inventory.handlers import discard, get
from modules.inventory.items import NotEnoughItems, add_items, counts, remove_items

Ctx = Callable[..., dict[str, Any]]


async def owned(db: Sql, uid: int) -> dict[int, int]:
    async with db.read() as conn:
        return await counts(conn, uid)


async def test_add_merges_and_accumulates(db: Sql) -> None:
    async with db.transaction() as tx:
        await add_items(tx, 7, [(ItemKind.COIN, 5), (ItemKind.DIAMOND, 1), (ItemKind.COIN, 2)])
    async with db.transaction() as tx:
        await add_items(tx, 7, [(ItemKind.COIN, 10)])
    assert await owned(db, 7) == {ItemKind.COIN: 17, ItemKind.DIAMOND: 1}
    assert await owned(db, 8) == {}


async def test_remove_is_all_or_nothing(db: Sql) -> None:
    async with db.transaction() as tx:
        await add_items(tx, 1, [(ItemKind.COIN, 5), (ItemKind.ENERGY, 1)])
    with pytest.raises(NotEnoughItems):
        async with db.transaction() as tx:
            await remove_items(tx, 1, [(ItemKind.COIN, 5), (ItemKind.ENERGY, 2)])
    assert await owned(db, 1) == {ItemKind.COIN: 5, ItemKind.ENERGY: 1}
    async with db.transaction() as tx:
        await remove_items(tx, 1, [(ItemKind.COIN, 5), (ItemKind.ENERGY, 1)])
    assert await owned(db, 1) == {}


async def test_negative_counts_are_a_programming_error(db: Sql) -> None:
    async with db.transaction() as tx:
        with pytest.raises(ValueError):
            await add_items(tx, 1, [(ItemKind.COIN, -1)])


async def test_concurrent_removals_never_go_negative(db: Sql) -> None:
    async with db.transaction() as tx:
        await add_items(tx, 3, [(ItemKind.COIN, 10)])

    async def spend() -> bool:
        try:
            async with db.transaction() as tx:
                await remove_items(tx, 3, [(ItemKind.COIN, 3)])
            return True
        except NotEnoughItems:
            return False

    results = await asyncio.gather(*(spend() for _ in range(20)))
    assert results.count(True) == 3
    assert await owned(db, 3) == {ItemKind.COIN: 1}


async def test_get_and_discard_handlers(ctx: Ctx, db: Sql) -> None:
    async with db.transaction() as tx:
        await add_items(tx, 5, [(ItemKind.DIAMOND, 4)])
    assert await get(**ctx(5)) == {"items": [{"item": 2, "name": "DIAMOND", "count": 4}]}
    assert await discard(ItemKind.DIAMOND, 3, **ctx(5)) == {"item": 2, "count": 1}
    with pytest.raises(NotEnoughItems) as info:
        await discard(ItemKind.DIAMOND, 2, **ctx(5))
    assert info.value.code == "not_enough_items"
    with pytest.raises(BadRequest):
        await discard(9999, 1, **ctx(5))
    with pytest.raises(BadRequest):
        await discard(ItemKind.DIAMOND, 0, **ctx(5))
    assert await get(**ctx(5)) == {"items": [{"item": 2, "name": "DIAMOND", "count": 1}]}
