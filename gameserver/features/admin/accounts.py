"""Admin accounts: a name, a role and an argon2id password hash (hashed as players' are: identity/passwords.py).

Roles are ordered: a ``viewer`` reads everything the console shows, a ``moderator`` also acts on players (mail,
kick, revoke sessions), an ``admin`` also changes what players own (inventory, gifts) and the job queue.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gameserver.errors import BadRequest
from gameserver.features.admin.errors import AdminNameTaken
from gameserver.features.admin.tables import admin_accounts
from gameserver.features.identity.validation import check_username

NAME_MIN = 2
NAME_MAX = 64


class Role(StrEnum):
    VIEWER = "viewer"
    MODERATOR = "moderator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


@dataclass(frozen=True, slots=True)
class Admin:
    admin_id: int
    name: str
    role: Role
    password_hash: str = field(repr=False)
    created_at: int

    def public(self) -> dict[str, Any]:
        return {"admin_id": self.admin_id, "name": self.name, "role": str(self.role)}


def check_name(name: str) -> str:
    """The stored (lower-case) admin name, or :class:`BadRequest`: a username's rules."""
    return check_username(name, min_len=NAME_MIN, max_len=NAME_MAX)


def check_role(role: object) -> Role:
    try:
        return Role(str(role))
    except ValueError:
        raise BadRequest(f"role must be one of {', '.join(Role)}") from None


def _admin(row: Any) -> Admin | None:
    if row is None:
        return None
    values = dict(row._mapping)
    return Admin(**{**values, "role": Role(values["role"])})


async def create_admin(conn: AsyncConnection, name: str, role: Role, password_hash: str) -> int:
    """Insert an admin account; returns its id. Raises AdminNameTaken."""
    try:
        result = await conn.execute(
            admin_accounts.insert().values(
                name=check_name(name), role=str(role), password_hash=password_hash, created_at=int(time.time() * 1000)
            )
        )
    except IntegrityError:
        raise AdminNameTaken() from None
    return int(result.inserted_primary_key[0])  # type: ignore[index]


async def admin_by_name(conn: AsyncConnection, name: str) -> Admin | None:
    row = (await conn.execute(sa.select(admin_accounts).where(admin_accounts.c.name == name.lower()))).first()
    return _admin(row)


async def admin_by_id(conn: AsyncConnection, admin_id: int) -> Admin | None:
    row = (await conn.execute(sa.select(admin_accounts).where(admin_accounts.c.admin_id == admin_id))).first()
    return _admin(row)
