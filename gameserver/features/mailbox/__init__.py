"""Player mail (seed 003, "Mail"): one Maildir per player, one folder per world, one file per mail.

:mod:`~gameserver.features.mailbox.maildir` does the files (delivery through ``tmp``, ``new`` -> ``cur`` on reading),
:mod:`~gameserver.features.mailbox.message` turns a :class:`Mail` into ASCII-safe bytes and back,
:class:`~gameserver.features.mailbox.store.MailStore` is the ``mail`` resource handed to handlers (its blocking file
I/O runs in threads), :mod:`~gameserver.features.mailbox.post` delivers and pushes ``mail.new``, and
:mod:`~gameserver.features.mailbox.admin` sets up the resource and the ``POST /mail/send`` route.
"""

from gameserver.features.mailbox.errors import MailboxFull, MailNotFound, PlayerNotFound
from gameserver.features.mailbox.message import SYSTEM, Item, Mail
from gameserver.features.mailbox.post import NEW_MAIL, post, post_many, post_once_many
from gameserver.features.mailbox.store import MailStore

__all__ = [
    "NEW_MAIL",
    "SYSTEM",
    "Item",
    "Mail",
    "MailNotFound",
    "MailStore",
    "MailboxFull",
    "PlayerNotFound",
    "post",
    "post_many",
    "post_once_many",
]
