"""Players as the console shows and changes them, through the code paths the game uses.

Reads: the account (identity), and what the built-in modules keep: inventory, family, friends, mailbox,
leaderboards. A module that is not installed (a game that dropped it) leaves its section out (None). Changes:
inventory through :mod:`modules.inventory.items` (the same rows and rules as a gift's claim), mail and gifts
through :func:`gameserver.features.mailbox.admin.send_system_mail` (``POST /mail/send``'s path), revoking through
the identity feature's :class:`~gameserver.features.identity.revocations.Revocations`.
"""

from __future__ import annotations

import importlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from enums import ItemKind
from gameserver.config import Config
from gameserver.errors import BadRequest, GameError
from gameserver.features.identity.accounts import Account, account_by_uid, accounts, display_names
from gameserver.features.mailbox.errors import PlayerNotFound
from gameserver.features.mailbox.store import MailStore
from gameserver.storage.sql import Sql

MAX_RESULTS = 50
MAILS_SHOWN = 20
MAX_DELTA = 1_000_000_000
TOP_SHOWN = 20


class ModuleMissing(GameError):
    code = "not_found"
    message = "the module that keeps this is not installed"
    status = 404


def game_module(name: str) -> Any:
    """A helper module of the built-in game modules (``modules.inventory.items``), or None if the game dropped it.
    Imported by name: ``modules/`` is the game's code, outside the framework's strict type check."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        return None


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search(db: Sql, query: str) -> list[dict[str, Any]]:
    """Players whose uid is ``query``, or whose username or display name contains it (case-insensitively)."""
    query = query.strip()
    if not query:
        raise BadRequest("give a name or a uid to search for")
    pattern = f"%{_like(query.lower())}%"
    condition = sa.or_(
        accounts.c.username.like(pattern, escape="\\"),
        sa.func.lower(accounts.c.display_name).like(pattern, escape="\\"),
    )
    if query.isdigit():
        condition = sa.or_(accounts.c.uid == int(query), condition)
    select = (
        sa.select(accounts.c.uid, accounts.c.username, accounts.c.display_name, accounts.c.world)
        .where(condition)
        .order_by(accounts.c.uid)
        .limit(MAX_RESULTS)
    )
    return [dict(row._mapping) for row in await db.fetch_all(select)]


async def account(db: Sql, uid: int) -> Account:
    async with db.engine.connect() as conn:
        found = await account_by_uid(conn, uid)
    if found is None:
        raise PlayerNotFound(f"no player {uid}")
    return found


async def profile(db: Sql, mail: MailStore | None, uid: int, *, online_here: int) -> dict[str, Any]:
    """Everything the console shows of one player. Raises player_not_found."""
    player = await account(db, uid)
    async with db.engine.connect() as conn:
        shown: dict[str, Any] = {
            "uid": player.uid,
            "username": player.username,
            "name": player.display_name,
            "world": player.world,
            "family_id": player.family,
            "created_at": player.created_at.isoformat(),
            "tokens_valid_after": player.tokens_valid_after,
            "connections_here": online_here,
            "inventory": await _inventory(conn, uid),
            "family": await _family(conn, uid),
            "friends": await _friends(conn, uid),
        }
    shown["mailbox"] = await _mailbox(mail, player)
    return shown


async def _inventory(conn: AsyncConnection, uid: int) -> list[dict[str, Any]] | None:
    items = game_module("modules.inventory.items")
    if items is None:
        return None
    owned = await items.counts(conn, uid)
    return [{"item": item, "name": items.item_name(item), "count": n} for item, n in owned.items()]


async def _family(conn: AsyncConnection, uid: int) -> dict[str, Any] | None:
    families = game_module("modules.family.members")
    if families is None:
        return None
    member = await families.membership(conn, uid)
    if member is None:
        return {}
    family = await families.family_by_id(conn, member.family_id)
    members = await families.members_of(conn, member.family_id)
    names = await display_names(conn, [m.uid for m in members])
    return {
        "family_id": member.family_id,
        "name": family.name if family is not None else "",
        "role": int(member.role),
        "members": [{"uid": m.uid, "name": names.get(m.uid, ""), "role": int(m.role)} for m in members],
    }


async def _friends(conn: AsyncConnection, uid: int) -> list[dict[str, Any]] | None:
    links = game_module("modules.friends.links")
    if links is None:
        return None
    friends: list[int] = await links.friends_of(conn, uid)
    names = await display_names(conn, friends)
    return [{"uid": friend, "name": names.get(friend, "")} for friend in friends]


async def _mailbox(mail: MailStore | None, player: Account) -> dict[str, Any] | None:
    if mail is None:  # a process without the worker role has no mail store
        return None
    page = await mail.page(player.world, player.uid, 0, MAILS_SHOWN)
    return {"total": page.total, "unread": page.unread, "mails": [m.summary() for m in page.mails]}


def check_item(value: object) -> ItemKind:
    try:
        return ItemKind(int(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise BadRequest(f"item must be one of {', '.join(f'{k.value} ({k.name})' for k in ItemKind)}") from None


async def change_inventory(db: Sql, uid: int, item: ItemKind, delta: int) -> int:
    """Add (``delta`` > 0) or take (< 0) items; returns the new count. Raises not_enough_items, player_not_found."""
    items = game_module("modules.inventory.items")
    if items is None:
        raise ModuleMissing("the inventory module is not installed")
    if type(delta) is not int or delta == 0 or abs(delta) > MAX_DELTA:
        raise BadRequest(f"delta must be a whole number from -{MAX_DELTA} to {MAX_DELTA}, not 0")
    await account(db, uid)

    async def change(tx: AsyncConnection) -> int:  # run again after a deadlock: touches nothing but tx
        if delta > 0:
            await items.add_items(tx, uid, [(item, delta)])
        else:
            await items.remove_items(tx, uid, [(item, -delta)])
        return int((await items.counts(tx, uid)).get(item, 0))

    return await db.run(change)


def boards(config: Config) -> tuple[str, ...]:
    """The leaderboard module's boards (its ``[modules.leaderboard]`` section, which it owns); none without it."""
    settings = game_module("modules.leaderboard.settings")
    return tuple(settings.settings(config).boards) if settings is not None else ()


async def leaderboards(db: Sql, boards: tuple[str, ...]) -> dict[str, list[dict[str, Any]]] | None:
    """Each configured board's top players with their names."""
    queries = game_module("modules.leaderboard.queries")
    if queries is None:
        return None
    shown: dict[str, list[dict[str, Any]]] = {}
    for board in boards:
        top = await queries.top_scores(db, board, TOP_SHOWN)
        async with db.engine.connect() as conn:
            names = await display_names(conn, [row["uid"] for row in top])
        shown[board] = [{**row, "name": names.get(row["uid"], "")} for row in top]
    return shown
