"""Families: players of one world band together; roles are ``enums.FamilyRole`` (MEMBER, ELDER, OWNER).

Gate functions: ``family.create``, ``family.join``, ``family.leave``, ``family.disband``, ``family.members``,
``family.set_role`` and ``family.kick``. Membership is in ``family_members`` and mirrored in
``accounts.family`` (what the chat edge's LOGIN identity carries); joining or leaving also moves the player's
live chat connections to the family channel through the ``chat`` resource, when the process has one.
"""

from gameserver.dispatch.registry import handler
from modules.family.handlers import create, disband, join, kick, leave, members, set_member_role
from modules.family.settings import FamilySettings

SETTINGS = FamilySettings  # [modules.family] in config.toml

HANDLERS = {
    "create": handler(create, idempotent=True),
    "join": handler(join, idempotent=True),
    "leave": handler(leave, idempotent=True),
    "disband": handler(disband, idempotent=True),
    "members": members,
    "set_role": handler(set_member_role, idempotent=True),
    "kick": handler(kick, idempotent=True),
}
