from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from enums import ItemKind
from gameserver.errors import BadRequest
from gameserver.storage.sql import Sql
from modules.inventory.items import counts, item_name, remove_items
from modules.inventory.replies import Inventory, ItemLeft

MAX_COUNT = 1_000_000_000


def item_list(owned: dict[int, int]) -> list[dict[str, Any]]:
    return [{"item": item, "name": item_name(item), "count": count} for item, count in owned.items()]


def _kind(item: int) -> ItemKind:
    try:
        return ItemKind(item)
    except ValueError:
        raise BadRequest(f"item {item} is not an ItemKind") from None


async def get(*, uid: int, db: Sql, **_: Any) -> Inventory:
    """Returns {"items": [{"item", "name", "count"}]}: what the caller owns, by ItemKind id."""
    async with db.read() as conn:
        return {"items": item_list(await counts(conn, uid))}


async def discard(item: int, count: int, *, uid: int, db: Sql, **_: Any) -> ItemLeft:
    """Throws away ``count`` of ``item``; returns {"item", "count"} left. Raises not_enough_items."""
    kind = _kind(item)
    if not 0 < count <= MAX_COUNT:
        raise BadRequest(f"count must be from 1 to {MAX_COUNT}")

    async def spend(tx: AsyncConnection) -> int:  # run again after a deadlock: touches nothing but tx
        await remove_items(tx, uid, [(kind, count)])
        return (await counts(tx, uid)).get(kind, 0)

    return {"item": int(kind), "count": await db.run(spend)}
