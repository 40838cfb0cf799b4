"""Leaderboards: each player's best score per board. The example module for module authors.

It shows, in a few lines each: a table declared on ``gameserver.storage.sql.metadata`` (``tables.py``) and
created by the module's own migration (``migrations/``),
reads and an all-or-nothing write (``queries.py``), a Redis cache with a TTL, settings from ``config``
(``[modules.leaderboard]``, ``settings.py``), module error codes (``errors.py``) and login (an injected ``uid``). See
``docs/storage.md``.

| fn | args | data | login |
|----|------|------|-------|
| ``leaderboard.submit`` | ``{"board", "score"}`` | ``{"best", "improved"}`` | yes |
| ``leaderboard.rank`` | ``{"board"}`` | ``{"score", "rank"}`` | yes |
| ``leaderboard.top`` | ``{"board", "limit"?}`` | ``{"board", "scores": [{"uid", "score"}]}`` | no |
"""

from gameserver.dispatch.registry import handler
from modules.leaderboard.handlers import rank, submit, top
from modules.leaderboard.settings import LeaderboardSettings

SETTINGS = LeaderboardSettings  # [modules.leaderboard] in config.toml

HANDLERS = {
    "submit": handler(submit, idempotent=True),
    "rank": rank,
    "top": handler(top, login=False),  # the public board: anyone may read it
}
