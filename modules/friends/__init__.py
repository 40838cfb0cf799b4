"""Friends: requests (delivered as a mail), accept, decline, list, remove.

Gate functions: ``friends.request``, ``friends.accept``, ``friends.decline``, ``friends.list`` and
``friends.remove``. A request reaches the other player as a mail of kind ``MailKind.FRIEND_REQUEST`` whose
``data.from`` is the asking uid; an accepted request pushes ``friends.accepted`` to the one who asked.
"""

from gameserver.dispatch.registry import handler
from modules.friends.handlers import accept, decline, list_friends, remove, request
from modules.friends.settings import FriendsSettings

SETTINGS = FriendsSettings  # [modules.friends] in config.toml

HANDLERS = {
    "request": handler(request, idempotent=True),
    "accept": handler(accept, idempotent=True),
    "decline": handler(decline, idempotent=True),
    "list": list_friends,
    "remove": handler(remove, idempotent=True),
}
