"""The ``accounts`` table and the helpers other modules use to read and update it.

One row per player: ``uid`` (the id everything else keys on), ``username`` (the login id, unique, stored
lower-case), ``password_hash`` (argon2id), ``display_name`` (what other players see: chat ``name``),
``world`` (the configured ``auth.world`` at registration), ``family`` (a family id, NULL until the family
module sets it), ``created_at`` (UTC) and ``tokens_valid_after`` (ms since the epoch: tokens issued at or
before it are revoked; NULL until the first logout or revocation). Its schema changes are Alembic revisions in
``gameserver/storage/migrations/versions``: change this declaration and add a revision. Helpers take a connection from
``db.transaction()`` (or ``db.read()`` to read) and plain values::

    async with db.transaction() as tx:
        account = await account_by_uid(tx, uid)
        await set_family(tx, uid, family_id)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gameserver.features.identity.errors import UsernameTaken
from gameserver.features.identity.validation import canonical_username
from gameserver.storage.sql import ID, metadata

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("uid", ID, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("display_name", sa.String(64), nullable=False),
    sa.Column("world", sa.Integer, nullable=False),
    sa.Column("family", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("tokens_valid_after", sa.BigInteger, nullable=True),  # added by revision core_0002
    sa.UniqueConstraint("username", name="uq_accounts_username"),
    sa.Index("ix_accounts_family", "family"),
    sa.Index("ix_accounts_world", "world"),
)


@dataclass(frozen=True, slots=True)
class Account:
    uid: int
    username: str
    password_hash: str = field(repr=False)
    display_name: str
    world: int
    family: int | None
    created_at: datetime
    tokens_valid_after: int | None = None

    def identity(self) -> dict[str, Any]:
        """Who the player is to the chat edge and other players: ``{uid, name, world, family}``."""
        return {"uid": self.uid, "name": self.display_name, "world": self.world, "family": self.family}


def _account(row: Row[Any] | None) -> Account | None:
    return None if row is None else Account(**row._mapping)


async def create_account(
    conn: AsyncConnection, *, username: str, password_hash: str, display_name: str, world: int
) -> int:
    """Insert an account and return its uid.

    Raises:
        UsernameTaken: an account with that (canonical) username exists.
    """
    statement = accounts.insert().values(
        username=canonical_username(username),
        password_hash=password_hash,
        display_name=display_name,
        world=world,
        family=None,
        created_at=datetime.now(UTC).replace(tzinfo=None),
    )
    try:
        result = await conn.execute(statement)
    except IntegrityError:
        raise UsernameTaken() from None
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


async def account_by_uid(conn: AsyncConnection, uid: int) -> Account | None:
    return _account((await conn.execute(accounts.select().where(accounts.c.uid == uid))).first())


async def account_by_username(conn: AsyncConnection, username: str) -> Account | None:
    query = accounts.select().where(accounts.c.username == canonical_username(username))
    return _account((await conn.execute(query)).first())


async def display_names(conn: AsyncConnection, uids: Iterable[int]) -> dict[int, str]:
    """The display names of those of ``uids`` that exist."""
    wanted = set(uids)
    if not wanted:
        return {}
    query = sa.select(accounts.c.uid, accounts.c.display_name).where(accounts.c.uid.in_(wanted))
    return {row.uid: row.display_name for row in await conn.execute(query)}


async def uids_in_world(conn: AsyncConnection, world: int) -> list[int]:
    """Every player of ``world``, by uid (e.g. for a mail to a whole world)."""
    result = await conn.execute(sa.select(accounts.c.uid).where(accounts.c.world == world).order_by(accounts.c.uid))
    return [int(uid) for uid in result.scalars()]


async def _update(conn: AsyncConnection, uid: int, **values: Any) -> bool:
    result = await conn.execute(accounts.update().where(accounts.c.uid == uid).values(**values))
    return bool(result.rowcount)


async def set_family(conn: AsyncConnection, uid: int, family: int | None) -> bool:
    """Put the player in ``family`` (None: in none); False if there is no such account."""
    return await _update(conn, uid, family=family)


async def set_world(conn: AsyncConnection, uid: int, world: int) -> bool:
    """Move the player to ``world`` (no handler does yet). What lives under the world must move too, after the
    commit: the mailbox (``<mail.root>/<world>/<uid>``, with its ``mailcount`` file) and the chat channels of
    connections already logged in (``chat.set_family`` moves only a family channel within one world)."""
    return await _update(conn, uid, world=world)


async def set_display_name(conn: AsyncConnection, uid: int, display_name: str) -> bool:
    """Rename the player (check it first with :func:`gameserver.features.identity.validation.check_display_name`)."""
    return await _update(conn, uid, display_name=display_name)


async def set_password_hash(conn: AsyncConnection, uid: int, password_hash: str) -> bool:
    return await _update(conn, uid, password_hash=password_hash)


async def revoke_tokens(conn: AsyncConnection, uid: int, before: int) -> int | None:
    """Revoke the player's tokens issued at or before ``before`` (ms since the epoch); an earlier revocation
    time is never restored. Returns the account's revocation time now, or None if there is no such account."""
    column = accounts.c.tokens_valid_after
    later = sa.case((sa.or_(column.is_(None), column < before), before), else_=column)
    await conn.execute(accounts.update().where(accounts.c.uid == uid).values(tokens_valid_after=later))
    return await revoked_before(conn, uid)


async def revoked_before(conn: AsyncConnection, uid: int) -> int | None:
    """The account's revocation time (ms), None if it has none or does not exist."""
    value = (await conn.execute(select_revoked_before(uid))).scalar()
    return None if value is None else int(value)


def select_revoked_before(uid: int) -> sa.Select[Any]:
    """The query of :func:`revoked_before`, for ``db.fetch_value`` (a read without a write transaction)."""
    return sa.select(accounts.c.tokens_valid_after).where(accounts.c.uid == uid)


async def revocations_since(conn: AsyncConnection, since: int) -> dict[int, int]:
    """``{uid: revocation time}`` of the accounts revoked after ``since`` (ms)."""
    column = accounts.c.tokens_valid_after
    result = await conn.execute(sa.select(accounts.c.uid, column).where(column > since))
    return {int(row.uid): int(row.tokens_valid_after) for row in result}
