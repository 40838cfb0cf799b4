"""``[modules.friends]``."""

from __future__ import annotations

from dataclasses import dataclass

from gameserver.config import Config, setting


@dataclass(frozen=True, slots=True)
class FriendsSettings:
    max_friends: int = setting(100, min=1)


def settings(config: Config) -> FriendsSettings:
    return config.module("friends", FriendsSettings)
