"""``[modules.leaderboard]``: a module's settings are a frozen dataclass of ``setting()`` fields, named as
``SETTINGS`` in its ``__init__.py``; start-up (and ``gameserver check-config``) checks the section against it."""

from __future__ import annotations

from dataclasses import dataclass

from gameserver.config import Config, setting


@dataclass(frozen=True, slots=True)
class LeaderboardSettings:
    boards: tuple[str, ...] = setting(("global",))
    max_top: int = setting(100, min=1, max=1000)
    cache_ttl: float = setting(5.0, min=0.001)


def settings(config: Config) -> LeaderboardSettings:
    return config.module("leaderboard", LeaderboardSettings)
