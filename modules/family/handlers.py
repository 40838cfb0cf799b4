from __future__ import annotations

import inspect
import logging
import unicodedata
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from enums import FamilyRole, ModuleErrorCode
from gameserver.config import Config
from gameserver.errors import BadRequest, Forbidden, GameError
from gameserver.features.mailbox.post import Push
from gameserver.storage.sql import Sql
from modules.common import names, player
from modules.family.members import (
    Family,
    Member,
    add_member,
    count_members,
    delete_family,
    family_by_id,
    insert_family,
    members_of,
    membership,
    remove_member,
    set_role,
)
from modules.family.replies import FamilyCreated, FamilyDisbanded, FamilyInfo, FamilyJoined, FamilyLeft, Kicked, RoleSet
from modules.family.settings import settings

log = logging.getLogger("modules.family")

DISBANDED = "family.disbanded"
KICKED = "family.kicked"


class FamilyNotFound(GameError):
    code = ModuleErrorCode.FAMILY_NOT_FOUND
    message = "no such family"


class FamilyNameTaken(GameError):
    code = ModuleErrorCode.FAMILY_NAME_TAKEN
    message = "a family of that name exists in this world"


class FamilyFull(GameError):
    code = ModuleErrorCode.FAMILY_FULL
    message = "the family has no room"


class AlreadyInFamily(GameError):
    code = ModuleErrorCode.ALREADY_IN_FAMILY
    message = "leave your family first"


class NotInFamily(GameError):
    code = ModuleErrorCode.NOT_IN_FAMILY
    message = "not in a family"


class NotFamilyOwner(GameError):
    code = ModuleErrorCode.NOT_FAMILY_OWNER
    message = "only the family's owner may do that"


class WrongWorld(GameError):
    code = ModuleErrorCode.WRONG_WORLD
    message = "that family is in another world"


def check_name(name: str, config: Config) -> str:
    name = name.strip()
    low, high = settings(config).min_name, settings(config).max_name
    if not low <= len(name) <= high:
        raise BadRequest(f"name must be {low}-{high} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise BadRequest("name must be printable text")
    return name


async def enroll(tx: AsyncConnection, uid: int, family_id: int, role: FamilyRole) -> None:
    """Adds ``uid`` to the family; a concurrent request that enrolled them first raises already_in_family."""
    try:
        await add_member(tx, uid, family_id, role)
    except IntegrityError:
        raise AlreadyInFamily() from None


async def move_chat(chat: Any, uid: int, world: int, family: int | None) -> None:
    """Move the player's chat to the family channel, if this process has the chat resource. The family change
    is committed already: a chat failure is logged, not answered (the next chat LOGIN has the new family)."""
    if chat is None:
        return
    try:
        result = chat.set_family(uid, world, family)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.exception("chat.set_family(%s, %s, %s) failed", uid, world, family)


async def create(name: str, *, uid: int, db: Sql, config: Config, chat: Any = None, **_: Any) -> FamilyCreated:
    """Creates a family owned by the caller; returns {"family_id", "name", "world"}.
    Raises family_name_taken, already_in_family."""
    name = check_name(name, config)
    me = await player(db, uid)

    async def found(tx: AsyncConnection) -> int:  # each db.run body may run again after a deadlock: tx only
        if await membership(tx, uid) is not None:
            raise AlreadyInFamily()
        try:
            family_id = await insert_family(tx, me.world, name)
        except IntegrityError:
            raise FamilyNameTaken() from None
        await enroll(tx, uid, family_id, FamilyRole.OWNER)
        return family_id

    family_id = await db.run(found)
    await move_chat(chat, uid, me.world, family_id)
    return {"family_id": family_id, "name": name, "world": me.world}


async def join(family_id: int, *, uid: int, db: Sql, config: Config, chat: Any = None, **_: Any) -> FamilyJoined:
    """Joins a family of the caller's world as a member; returns {"family_id", "name", "role"}.
    Raises family_not_found, wrong_world, already_in_family, family_full."""
    me = await player(db, uid)

    async def enter(tx: AsyncConnection) -> Family:
        family = await family_by_id(tx, family_id, lock=True)  # joins to one family queue here
        if family is None:
            raise FamilyNotFound()
        if family.world != me.world:
            raise WrongWorld()
        if await membership(tx, uid) is not None:
            raise AlreadyInFamily()
        if await count_members(tx, family_id) >= settings(config).max_members:
            raise FamilyFull()
        await enroll(tx, uid, family_id, FamilyRole.MEMBER)
        return family

    family = await db.run(enter)
    await move_chat(chat, uid, me.world, family_id)
    return {"family_id": family_id, "name": family.name, "role": int(FamilyRole.MEMBER)}


async def leave(*, uid: int, db: Sql, chat: Any = None, **_: Any) -> FamilyLeft:
    """Leaves the caller's family; returns {"family_id", "disbanded"} (the last member's leaving disbands
    it). Raises not_in_family; forbidden for an owner with members left (hand over or disband first)."""

    async def go(tx: AsyncConnection) -> tuple[Family, bool]:
        family, me = await _locked_membership(tx, uid)
        disbanded = me.role == FamilyRole.OWNER
        if disbanded:
            if await count_members(tx, family.family_id) > 1:
                raise Forbidden("the owner hands the family to another member (family.set_role) or disbands it")
            await delete_family(tx, family.family_id)
        else:
            await remove_member(tx, uid)
        return family, disbanded

    family, disbanded = await db.run(go)
    await move_chat(chat, uid, family.world, None)
    return {"family_id": family.family_id, "disbanded": disbanded}


async def disband(*, uid: int, db: Sql, push: Push, chat: Any = None, **_: Any) -> FamilyDisbanded:
    """Dissolves the caller's family (owner only); returns {"family_id", "members"} (uids that were in it).
    The others get the push family.disbanded. Raises not_in_family, not_family_owner."""

    async def dissolve(tx: AsyncConnection) -> tuple[Family, list[int]]:
        family, me = await _locked_membership(tx, uid)
        if me.role != FamilyRole.OWNER:
            raise NotFamilyOwner()
        return family, await delete_family(tx, family.family_id)

    family, uids = await db.run(dissolve)  # then the pushes and chat moves: never inside a retried body
    for member in uids:
        await move_chat(chat, member, family.world, None)
        if member != uid:
            push(member, DISBANDED, {"family_id": family.family_id, "name": family.name})
    return {"family_id": family.family_id, "members": uids}


async def members(family_id: int | None = None, *, uid: int, db: Sql, **_: Any) -> FamilyInfo:
    """Returns {"family_id", "name", "world", "members": [{"uid", "name", "role"}]} of the caller's family
    or of ``family_id``, owner first. Raises not_in_family, family_not_found."""
    async with db.read() as conn:
        if family_id is None:
            mine = await membership(conn, uid)
            if mine is None:
                raise NotInFamily()
            family_id = mine.family_id
        family = await family_by_id(conn, family_id)
        if family is None:
            raise FamilyNotFound()
        listed = await members_of(conn, family_id)
    shown = await names(db, (m.uid for m in listed))
    return {
        "family_id": family.family_id,
        "name": family.name,
        "world": family.world,
        "members": [{"uid": m.uid, "name": shown.get(m.uid, ""), "role": int(m.role)} for m in listed],
    }


async def set_member_role(member: int, role: int, *, uid: int, db: Sql, **_: Any) -> RoleSet:
    """The owner gives ``member`` a role (FamilyRole); giving OWNER hands the family over and makes the
    caller an ELDER. Returns {"uid", "role"}. Raises not_in_family, not_family_owner, bad_request."""
    try:
        new_role = FamilyRole(role)
    except ValueError:
        raise BadRequest(f"role must be a FamilyRole: {', '.join(f'{r.value} {r.name}' for r in FamilyRole)}") from None
    if member == uid:
        raise BadRequest("cannot change your own role")

    async def change(tx: AsyncConnection) -> None:
        family, me = await _locked_membership(tx, uid)
        if me.role != FamilyRole.OWNER:
            raise NotFamilyOwner()
        target = await _member_of(tx, member, family)
        await set_role(tx, target.uid, new_role)
        if new_role == FamilyRole.OWNER:
            await set_role(tx, uid, FamilyRole.ELDER)

    await db.run(change)
    return {"uid": member, "role": int(new_role)}


async def kick(member: int, *, uid: int, db: Sql, push: Push, chat: Any = None, **_: Any) -> Kicked:
    """An elder or the owner removes a member of lower rank; returns {"uid"}. The member gets the push
    family.kicked. Raises not_in_family, forbidden."""

    async def remove(tx: AsyncConnection) -> Family:
        family, me = await _locked_membership(tx, uid)
        target = await _member_of(tx, member, family)
        if me.role < FamilyRole.ELDER or target.role >= me.role:
            raise Forbidden("only the owner or an elder removes members of a lower rank")
        await remove_member(tx, member)
        return family

    family = await db.run(remove)
    await move_chat(chat, member, family.world, None)
    push(member, KICKED, {"family_id": family.family_id, "name": family.name})
    return {"uid": member}


async def _locked_membership(tx: AsyncConnection, uid: int) -> tuple[Family, Member]:
    """The caller's family, locked for the rest of the transaction, and the caller's membership in it."""
    mine = await membership(tx, uid)
    if mine is None:
        raise NotInFamily()
    family = await family_by_id(tx, mine.family_id, lock=True)
    mine = await membership(tx, uid)  # read again under the lock: it may have changed meanwhile
    if family is None or mine is None or mine.family_id != family.family_id:
        raise NotInFamily()
    return family, mine


async def _member_of(tx: AsyncConnection, uid: int, family: Family) -> Member:
    found = await membership(tx, uid)
    if found is None or found.family_id != family.family_id:
        raise BadRequest(f"player {uid} is not in your family")
    return found
