"""Small helpers over ``scores``: reads take the ``db``, writes take the transaction they belong to."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gameserver.storage.sql import Sql
from modules.leaderboard.tables import scores


async def best_score(tx: AsyncConnection, board: str, uid: int) -> int | None:
    """The player's best, row-locked until the transaction ends (MariaDB; SQLite locks the whole file)."""
    query = sa.select(scores.c.score).where(scores.c.board == board, scores.c.uid == uid).with_for_update()
    value = (await tx.execute(query)).scalar()
    return None if value is None else int(value)


async def save_best(tx: AsyncConnection, board: str, uid: int, score: int, now_ms: int, *, first: bool) -> None:
    if first:
        await tx.execute(scores.insert().values(board=board, uid=uid, score=score, updated_at=now_ms))
    else:
        where = (scores.c.board == board) & (scores.c.uid == uid)
        await tx.execute(scores.update().where(where).values(score=score, updated_at=now_ms))


async def top_scores(db: Sql, board: str, limit: int) -> list[dict[str, int]]:
    """Highest first; equal scores in the order they were reached."""
    query = (
        sa.select(scores.c.uid, scores.c.score)
        .where(scores.c.board == board)
        .order_by(scores.c.score.desc(), scores.c.updated_at, scores.c.uid)
        .limit(limit)
    )
    return [{"uid": row.uid, "score": row.score} for row in await db.fetch_all(query)]


async def rank_of(db: Sql, board: str, score: int) -> int:
    """1 + the number of players with a higher score (equal scores share a rank)."""
    higher = sa.select(sa.func.count()).where(scores.c.board == board, scores.c.score > score)
    return 1 + int(await db.fetch_value(higher))


async def score_of(db: Sql, board: str, uid: int) -> int | None:
    value = await db.fetch_value(sa.select(scores.c.score).where(scores.c.board == board, scores.c.uid == uid))
    return None if value is None else int(value)
