from enum import IntEnum


class ItemKind(IntEnum):
    """What a player can own; the ids are inventory keys in SQL and in mail gifts. Never renumber one."""

    COIN = 1
    DIAMOND = 2
    ENERGY = 3
    EXPERIENCE_POTION = 10
    SKILL_SCROLL = 11
    WEAPON_SHARD = 20
    ARMOR_SHARD = 21
    FAMILY_COIN = 30
