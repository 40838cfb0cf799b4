"""Helpers every game module may use (seed 003: "Do not put non-generic functions in this module").

Resolving uids to players and to display names: most modules need one or the other.
"""

from __future__ import annotations

from collections.abc import Iterable

from gameserver.errors import PlayerNotFound
from gameserver.features.identity.accounts import Account, account_by_uid, display_names
from gameserver.storage.sql import Sql

__all__ = ["PlayerNotFound", "names", "player"]


async def player(db: Sql, uid: int) -> Account:
    """The account of ``uid``. Raises ``player_not_found``."""
    async with db.read() as conn:
        account = await account_by_uid(conn, uid)
    if account is None:
        raise PlayerNotFound(f"no player {uid}")
    return account


async def names(db: Sql, uids: Iterable[int]) -> dict[int, str]:
    """``{uid: display name}`` for those of ``uids`` that exist."""
    async with db.read() as conn:
        return await display_names(conn, uids)
