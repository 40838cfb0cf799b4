"""Family queries and changes for the handlers: each takes a connection inside the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from enums import FamilyRole
from gameserver.features.identity.accounts import set_family
from modules.family.tables import families, family_members


@dataclass(frozen=True, slots=True)
class Family:
    family_id: int
    world: int
    name: str


@dataclass(frozen=True, slots=True)
class Member:
    uid: int
    family_id: int
    role: FamilyRole


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


async def family_by_id(conn: AsyncConnection, family_id: int, *, lock: bool = False) -> Family | None:
    """The family; with ``lock`` its row stays locked until the transaction ends (MariaDB; SQLite has one
    writer at a time anyway), so that member counts checked after it hold."""
    query: Any = sa.select(families.c.family_id, families.c.world, families.c.name).where(
        families.c.family_id == family_id
    )
    if lock:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return None if row is None else Family(int(row[0]), int(row[1]), str(row[2]))


async def membership(conn: AsyncConnection, uid: int) -> Member | None:
    query = sa.select(family_members.c.family_id, family_members.c.role).where(family_members.c.uid == uid)
    row = (await conn.execute(query)).first()
    return None if row is None else Member(uid, int(row[0]), FamilyRole(row[1]))


async def members_of(conn: AsyncConnection, family_id: int) -> list[Member]:
    query = (
        sa.select(family_members.c.uid, family_members.c.role)
        .where(family_members.c.family_id == family_id)
        .order_by(family_members.c.role.desc(), family_members.c.joined_at, family_members.c.uid)
    )
    return [Member(int(uid), family_id, FamilyRole(role)) for uid, role in await conn.execute(query)]


async def count_members(conn: AsyncConnection, family_id: int) -> int:
    query = sa.select(sa.func.count()).select_from(family_members).where(family_members.c.family_id == family_id)
    return int((await conn.execute(query)).scalar_one())


async def insert_family(conn: AsyncConnection, world: int, name: str) -> int:
    """A new family's id; raises IntegrityError if ``name`` is taken in ``world``."""
    result = await conn.execute(families.insert().values(world=world, name=name, created_at=now()))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


async def add_member(conn: AsyncConnection, uid: int, family_id: int, role: FamilyRole) -> None:
    """Raises IntegrityError if ``uid`` is in a family already."""
    await conn.execute(family_members.insert().values(uid=uid, family_id=family_id, role=role, joined_at=now()))
    await set_family(conn, uid, family_id)


async def remove_member(conn: AsyncConnection, uid: int) -> None:
    await conn.execute(family_members.delete().where(family_members.c.uid == uid))
    await set_family(conn, uid, None)


async def set_role(conn: AsyncConnection, uid: int, role: FamilyRole) -> None:
    await conn.execute(family_members.update().where(family_members.c.uid == uid).values(role=role))


async def delete_family(conn: AsyncConnection, family_id: int) -> list[int]:
    """Remove the family and every membership; returns the uids that were in it."""
    uids = [member.uid for member in await members_of(conn, family_id)]
    for uid in uids:
        await remove_member(conn, uid)
    await conn.execute(families.delete().where(families.c.family_id == family_id))
    return uids
