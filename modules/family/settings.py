"""``[modules.family]``."""

from __future__ import annotations

from dataclasses import dataclass

from gameserver.config import Config, setting


@dataclass(frozen=True, slots=True)
class FamilySettings:
    min_name: int = setting(2, min=1, max=64)
    max_name: int = setting(16, min=1, max=64)
    max_members: int = setting(30, min=1)


def settings(config: Config) -> FamilySettings:
    return config.module("family", FamilySettings)
