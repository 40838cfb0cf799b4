from enum import IntEnum


class MailKind(IntEnum):
    """Why a mail was sent; clients pick an icon and the actions it offers. Never renumber one."""

    PLAYER = 1
    SYSTEM = 2
    GIFT = 3
    FRIEND_REQUEST = 4
    FAMILY = 5
