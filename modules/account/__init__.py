"""The player's account as other modules and players see it: display name, world, family.

Gate functions: ``account.profile`` (own, or another player's), ``account.rename`` and ``account.names``
(uids to display names, for lists). The ``accounts`` table belongs to :mod:`gameserver.features.identity.accounts`.
"""

from gameserver.dispatch.registry import handler
from modules.account.handlers import names, profile, rename

HANDLERS = {
    "profile": profile,
    "rename": handler(rename, idempotent=True),
    "names": names,
}
