from enum import IntEnum


class FamilyRole(IntEnum):
    """A member's rank in a family; a higher value may manage the lower ones. Never renumber one."""

    MEMBER = 1
    ELDER = 2
    OWNER = 3
