from __future__ import annotations

from typing import Any

from gameserver.errors import BadRequest
from gameserver.features.identity.accounts import Account, set_display_name
from gameserver.features.identity.validation import check_display_name
from gameserver.storage.sql import Sql
from modules.account.replies import Names, Profile
from modules.common import names as display_names
from modules.common import player as account_of

MAX_NAMES = 100


def profile_of(account: Account) -> dict[str, Any]:
    return {"uid": account.uid, "name": account.display_name, "world": account.world, "family": account.family}


async def profile(player: int | None = None, *, uid: int, db: Sql, **_: Any) -> Profile:
    """Returns {"uid", "name", "world", "family"} of the caller, or of ``player``. Raises player_not_found."""
    return profile_of(await account_of(db, uid if player is None else player))


async def rename(name: str, *, uid: int, db: Sql, **_: Any) -> Profile:
    """Changes the caller's display name; returns the new profile. Raises bad_request for a bad name."""
    name = check_display_name(name)
    async with db.transaction() as tx:
        await set_display_name(tx, uid, name)
    return profile_of(await account_of(db, uid))


async def names(players: list[int], *, db: Sql, **_: Any) -> Names:
    """Returns {"players": [{"uid", "name"}]} for those of ``players`` that exist (at most 100 asked)."""
    if len(players) > MAX_NAMES or not all(type(p) is int for p in players):
        raise BadRequest(f"players must be a list of at most {MAX_NAMES} uids")
    found = await display_names(db, players)
    return {"players": [{"uid": uid, "name": found[uid]} for uid in dict.fromkeys(players) if uid in found]}
