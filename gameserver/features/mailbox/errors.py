"""The mail errors clients switch on (codes in :class:`enums.ModuleErrorCode`)."""

from __future__ import annotations

from enums import ModuleErrorCode
from gameserver.errors import GameError, PlayerNotFound

__all__ = ["MailNotFound", "MailboxFull", "PlayerNotFound"]  # PlayerNotFound lives in gameserver.errors


class MailNotFound(GameError):
    code = ModuleErrorCode.MAIL_NOT_FOUND
    message = "no such mail"
    status = 404


class MailboxFull(GameError):
    code = ModuleErrorCode.MAILBOX_FULL
    message = "the recipient's mailbox is full"
    status = 409
