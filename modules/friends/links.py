"""Friendship rows for the handlers: each takes a connection inside the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from modules.friends.tables import friend_requests, friends


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


async def are_friends(conn: AsyncConnection, uid: int, other: int) -> bool:
    query = sa.select(friends.c.uid).where(friends.c.uid == uid, friends.c.friend == other)
    return (await conn.execute(query)).first() is not None


async def friends_of(conn: AsyncConnection, uid: int) -> list[int]:
    query = sa.select(friends.c.friend).where(friends.c.uid == uid).order_by(friends.c.since, friends.c.friend)
    return [int(friend) for friend in (await conn.execute(query)).scalars()]


async def count_friends(conn: AsyncConnection, uid: int) -> int:
    query = sa.select(sa.func.count()).select_from(friends).where(friends.c.uid == uid)
    return int((await conn.execute(query)).scalar_one())


async def befriend(conn: AsyncConnection, a: int, b: int) -> None:
    """Both rows at once; raises IntegrityError if they are friends already."""
    since = now()
    await conn.execute(
        friends.insert(), [{"uid": a, "friend": b, "since": since}, {"uid": b, "friend": a, "since": since}]
    )


async def unfriend(conn: AsyncConnection, a: int, b: int) -> bool:
    result = await conn.execute(
        friends.delete().where(
            sa.or_(
                sa.and_(friends.c.uid == a, friends.c.friend == b), sa.and_(friends.c.uid == b, friends.c.friend == a)
            )
        )
    )
    return bool(result.rowcount)


async def add_request(conn: AsyncConnection, sender: int, recipient: int) -> bool:
    """False if ``sender`` has asked already."""
    query = sa.select(friend_requests.c.sender).where(
        friend_requests.c.sender == sender, friend_requests.c.recipient == recipient
    )
    if (await conn.execute(query)).first() is not None:
        return False
    try:
        await conn.execute(friend_requests.insert().values(sender=sender, recipient=recipient, created_at=now()))
    except IntegrityError:  # the same request, sent at the same moment from another connection
        return False
    return True


async def drop_request(conn: AsyncConnection, sender: int, recipient: int) -> bool:
    """Remove a pending request; False if there was none."""
    result = await conn.execute(
        friend_requests.delete().where(friend_requests.c.sender == sender, friend_requests.c.recipient == recipient)
    )
    return bool(result.rowcount)


async def requests_to(conn: AsyncConnection, uid: int) -> list[int]:
    query = (
        sa.select(friend_requests.c.sender)
        .where(friend_requests.c.recipient == uid)
        .order_by(friend_requests.c.created_at, friend_requests.c.sender)
    )
    return [int(sender) for sender in (await conn.execute(query)).scalars()]
