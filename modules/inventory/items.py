"""Inventory helpers for other modules (mail gifts, shops, quests): they take a transaction and plain values.

Every change runs inside the caller's transaction (a ``db.run()`` body), so it commits or rolls back with the
rest of the caller's work (a claimed gift's mark and its items, a purchase's price and goods). Rows are touched
in item order, so two transactions never wait on each other's inventory rows in a cycle; a caller that locks
other rows too may still deadlock on MariaDB, which ``db.run()`` retries.

Removal is one conditional ``UPDATE ... SET count = count - n WHERE count >= n``: two concurrent removals
cannot both spend the same items, on SQLite (one writer at a time) and MariaDB (the row lock) alike.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from enums import ItemKind, ModuleErrorCode
from gameserver.errors import GameError
from modules.inventory.tables import inventory


class NotEnoughItems(GameError):
    code = ModuleErrorCode.NOT_ENOUGH_ITEMS
    message = "not enough items"


def _merged(items: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: dict[int, int] = {}
    for item, count in items:
        if count < 0:
            raise ValueError(f"count of item {item} is negative: {count}")
        merged[int(item)] = merged.get(int(item), 0) + count
    return sorted((item, count) for item, count in merged.items() if count)


async def add_items(conn: AsyncConnection, uid: int, items: Iterable[tuple[int, int]]) -> None:
    """Add ``(item, count)`` pairs to ``uid``'s inventory."""
    for item, count in _merged(items):
        await conn.execute(_upsert(conn.dialect.name, uid, item, count))


def _upsert(dialect: str, uid: int, item: int, count: int) -> sa.Executable:
    values = {"uid": uid, "item": item, "count": count}
    if dialect == "mysql":
        mysql_insert = mysql.insert(inventory).values(**values)
        return mysql_insert.on_duplicate_key_update(count=inventory.c.count + mysql_insert.inserted.count)
    sqlite_insert = sqlite.insert(inventory).values(**values)
    return sqlite_insert.on_conflict_do_update(
        index_elements=[inventory.c.uid, inventory.c.item],
        set_={"count": inventory.c.count + sqlite_insert.excluded.count},
    )


async def remove_items(conn: AsyncConnection, uid: int, items: Iterable[tuple[int, int]]) -> None:
    """Take ``(item, count)`` pairs from ``uid``'s inventory, all or none.

    Raises:
        NotEnoughItems: the player has fewer of one of them; the caller's transaction rolls back.
    """
    for item, count in _merged(items):
        result = await conn.execute(
            inventory.update()
            .where(inventory.c.uid == uid, inventory.c.item == item, inventory.c.count >= count)
            .values(count=inventory.c.count - count)
        )
        if result.rowcount != 1:
            raise NotEnoughItems(f"not enough of item {item_name(item)}")


async def counts(conn: AsyncConnection, uid: int) -> dict[int, int]:
    """``{item: count}`` of what ``uid`` owns (kinds with a count of 0 left out)."""
    query = sa.select(inventory.c.item, inventory.c.count).where(inventory.c.uid == uid, inventory.c.count > 0)
    return {int(item): int(count) for item, count in await conn.execute(query.order_by(inventory.c.item))}


def item_name(item: int) -> str:
    """The ItemKind name of ``item`` ("" for an id no longer in the enum)."""
    try:
        return ItemKind(item).name
    except ValueError:
        return ""
