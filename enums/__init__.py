"""Enums shared with game clients.

Integer enums double as SQL keys (seed 003: comparing ints is cheaper than strings); string enums are
wire values. ``gameserver enums export --format json|csharp|lua|typescript`` writes every enum listed in
``__all__`` for client code, so an enum a client needs goes here and into ``__all__``.
"""

from enums.errors import AuthErrorCode, ErrorCode, ModerationErrorCode, ModuleErrorCode
from enums.family import FamilyRole
from enums.items import ItemKind
from enums.mail import MailKind

__all__ = ["ErrorCode", "AuthErrorCode", "ModuleErrorCode", "ModerationErrorCode", "ItemKind", "FamilyRole", "MailKind"]
