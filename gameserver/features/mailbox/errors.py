"""The mail errors clients switch on (codes in :class:`enums.ModuleErrorCode`)."""

from __future__ import annotations

from enums import ModuleErrorCode
from gameserver.errors import GameError


class MailNotFound(GameError):
    code = ModuleErrorCode.MAIL_NOT_FOUND
    message = "no such mail"
    status = 404


class PlayerNotFound(GameError):
    code = ModuleErrorCode.PLAYER_NOT_FOUND
    message = "no such player"
    status = 404


class MailboxFull(GameError):
    code = ModuleErrorCode.MAILBOX_FULL
    message = "the recipient's mailbox is full"
    status = 409
