"""modules/leaderboard, the example module: its handlers called directly with injected arguments, on both
db backends and both kv backends, then through the gate as a client calls them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from gameserver.app import App
from gameserver.config import Config
from gameserver.dispatch.registry import discover
from gameserver.errors import BadRequest
from gameserver.keys import Keys
from gameserver.storage.migrate import Schema
from gameserver.storage.sql import Sql
from modules.leaderboard.errors import NoScore, UnknownBoard
from modules.leaderboard.handlers import MAX_SCORE, rank, submit, top
from modules.leaderboard.tables import scores
from tests.clients import TcpClient
from tests.integration.conftest import Kv


@pytest.fixture
async def injected(db: Sql, kv: Kv, config_factory: Callable[..., Config]) -> dict[str, Any]:
    """What the dispatcher would inject, minus ``uid`` (each call passes its own)."""
    await db.start(Schema.of(discover(), "upgrade").prepare)
    config = config_factory(modules={"leaderboard": {"boards": ["global", "weekly"], "max_top": 3}})
    return {"db": db, "redis": kv.redis, "keys": Keys(kv.prefix), "config": config}


async def test_submit_keeps_each_players_best(injected: dict[str, Any]) -> None:
    assert await submit("global", 10, uid=1, **injected) == {"best": 10, "improved": True}
    assert await submit("global", 7, uid=1, **injected) == {"best": 10, "improved": False}
    assert await submit("global", 12, uid=1, **injected) == {"best": 12, "improved": True}
    assert await submit("weekly", 3, uid=1, **injected) == {"best": 3, "improved": True}
    assert await rank("global", uid=1, **injected) == {"score": 12, "rank": 1}
    assert await rank("weekly", uid=1, **injected) == {"score": 3, "rank": 1}


async def test_top_and_rank(injected: dict[str, Any]) -> None:
    for uid, score in [(1, 50), (2, 70), (3, 50), (4, 10)]:
        await submit("global", score, uid=uid, **injected)
    board = await top("global", **injected)
    # max_top = 3; equal scores in the order they were reached (uid 1 before uid 3)
    assert board == {
        "board": "global",
        "scores": [{"uid": 2, "score": 70}, {"uid": 1, "score": 50}, {"uid": 3, "score": 50}],
    }
    assert (await top("global", limit=1, **injected))["scores"] == [{"uid": 2, "score": 70}]
    assert [await rank("global", uid=uid, **injected) for uid in (2, 1, 3, 4)] == [
        {"score": 70, "rank": 1},
        {"score": 50, "rank": 2},
        {"score": 50, "rank": 2},
        {"score": 10, "rank": 4},
    ]
    assert await top("weekly", **injected) == {"board": "weekly", "scores": []}


async def test_top_is_cached_until_a_better_score_or_the_ttl(injected: dict[str, Any], kv: Kv) -> None:
    db, key = injected["db"], injected["keys"].leaderboard_top("global")
    await submit("global", 5, uid=1, **injected)
    assert (await top("global", **injected))["scores"] == [{"uid": 1, "score": 5}]
    assert 0 < await kv.redis.pttl(key) <= 5000  # modules.leaderboard.cache_ttl
    # A row written behind the module's back (another tool, say) shows only once the cached list is gone.
    await db.execute(scores.insert().values(board="global", uid=2, score=9, updated_at=0))
    assert (await top("global", **injected))["scores"] == [{"uid": 1, "score": 5}]
    await kv.redis.delete(key)  # what the TTL does in time
    assert (await top("global", **injected))["scores"] == [{"uid": 2, "score": 9}, {"uid": 1, "score": 5}]
    # An improved score drops the cached list at once.
    await submit("global", 20, uid=1, **injected)
    assert await kv.redis.exists(key) == 0
    assert (await top("global", **injected))["scores"][0] == {"uid": 1, "score": 20}


async def test_errors(injected: dict[str, Any]) -> None:
    with pytest.raises(UnknownBoard) as raised:
        await submit("monthly", 1, uid=1, **injected)
    assert raised.value.code == "leaderboard_unknown_board"
    with pytest.raises(UnknownBoard):
        await top("monthly", **injected)
    with pytest.raises(NoScore) as no_score:
        await rank("global", uid=1, **injected)
    assert no_score.value.code == "leaderboard_no_score"
    for score in (-1, MAX_SCORE + 1):
        with pytest.raises(BadRequest, match="score must be"):
            await submit("global", score, uid=1, **injected)
    with pytest.raises(BadRequest, match="limit must be at least 1"):
        await top("global", limit=0, **injected)
    assert await injected["db"].fetch_value(sa.select(sa.func.count()).select_from(scores)) == 0


async def test_through_the_gate(app_factory: Callable[..., Any], backends: dict[str, Any]) -> None:
    app: App = await app_factory(**backends)
    tokens = app.resources.extra["tokens"]  # the auth feature's token issuer: a real login, no test auth
    ann, bob = tokens.issue(1), tokens.issue(2)
    client = await TcpClient.open(app.ports["gate-tcp"])
    try:
        reply = await client.call("leaderboard.submit", {"board": "global", "score": 5})
        assert reply["error"]["code"] == "unauthorized"
        reply = await client.call("leaderboard.submit", {"board": "global", "score": 5}, token=ann)
        assert reply == {"id": 2, "ok": True, "data": {"best": 5, "improved": True}}
        await client.call("leaderboard.submit", {"board": "global", "score": 8}, token=bob)
        reply = await client.call("leaderboard.top", {"board": "global", "limit": 5})  # public: no token
        assert reply["data"] == {"board": "global", "scores": [{"uid": 2, "score": 8}, {"uid": 1, "score": 5}]}
        reply = await client.call("leaderboard.rank", {"board": "global"}, token=ann)
        assert reply["data"] == {"score": 5, "rank": 2}
        reply = await client.call("leaderboard.rank", {"board": "weekly"}, token=ann)
        assert reply == {
            "id": 6,
            "ok": False,
            "error": {"code": "leaderboard_unknown_board", "message": "no leaderboard 'weekly'"},
        }
        reply = await client.call("leaderboard.submit", {"board": "global", "score": "9"}, token=ann)
        assert reply["error"] == {"code": "bad_request", "message": "score must be an integer"}
    finally:
        await client.close()
