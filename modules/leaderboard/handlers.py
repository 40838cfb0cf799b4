from __future__ import annotations

import json
import time

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection

from gameserver.config import Config
from gameserver.errors import BadRequest
from gameserver.keys import Keys
from gameserver.storage.sql import Sql
from modules.leaderboard.errors import NoScore, UnknownBoard
from modules.leaderboard.queries import best_score, rank_of, save_best, score_of, top_scores
from modules.leaderboard.replies import Rank, Submitted, Top
from modules.leaderboard.settings import LeaderboardSettings, settings

MAX_SCORE = 2**53 - 1  # the largest integer a JavaScript client reads exactly


async def submit(
    board: str, score: int, *, uid: int, db: Sql, redis: Redis, keys: Keys, config: Config, **_: object
) -> Submitted:
    """Record a score; the board keeps each player's best. Returns {"best", "improved"}; raises
    leaderboard_unknown_board."""
    _check_board(settings(config), board)
    if not 0 <= score <= MAX_SCORE:
        raise BadRequest(f"score must be 0-{MAX_SCORE}")

    async def record(tx: AsyncConnection) -> int | None:  # all or nothing; run again after a deadlock: tx only
        best = await best_score(tx, board, uid)
        if best is None or score > best:
            await save_best(tx, board, uid, score, time.time_ns() // 1_000_000, first=best is None)
        return best

    best = await db.run(record)
    improved = best is None or score > best
    if improved:
        await redis.delete(keys.leaderboard_top(board))  # after the commit: readers refill it from the db
    return {"best": score if improved else best, "improved": improved}


async def rank(board: str, *, uid: int, db: Sql, config: Config, **_: object) -> Rank:
    """The caller's best score and rank (1 = first). Returns {"score", "rank"}; raises
    leaderboard_unknown_board, leaderboard_no_score."""
    _check_board(settings(config), board)
    score = await score_of(db, board, uid)
    if score is None:
        raise NoScore()
    return {"score": score, "rank": await rank_of(db, board, score)}


async def top(board: str, limit: int = 10, *, db: Sql, redis: Redis, keys: Keys, config: Config, **_: object) -> Top:
    """The ``limit`` best scores (at most ``max_top``), highest first, up to ``cache_ttl`` seconds old. Returns
    {"board", "scores": [{"uid", "score"}]}; raises leaderboard_unknown_board."""
    board_settings = settings(config)
    _check_board(board_settings, board)
    if limit < 1:
        raise BadRequest("limit must be at least 1")
    key = keys.leaderboard_top(board)
    cached = await redis.get(key)
    if cached is None:  # one cached list of max_top entries serves every limit
        cached = json.dumps(await top_scores(db, board, board_settings.max_top))
        await redis.set(key, cached, px=int(board_settings.cache_ttl * 1000))
    return {"board": board, "scores": json.loads(cached)[:limit]}


def _check_board(board_settings: LeaderboardSettings, board: str) -> None:
    if board not in board_settings.boards:
        raise UnknownBoard(f"no leaderboard {board!r}")
