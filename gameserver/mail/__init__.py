"""Player mail (seed 003, "Mail"): one Maildir per player, one folder per world, one file per mail.

:mod:`~gameserver.mail.maildir` does the files (delivery through ``tmp``, ``new`` -> ``cur`` on reading),
:mod:`~gameserver.mail.message` turns a :class:`Mail` into ASCII-safe bytes and back,
:class:`~gameserver.mail.store.MailStore` is the ``mail`` resource handed to handlers (its blocking file
I/O runs in threads), :mod:`~gameserver.mail.post` delivers and pushes ``mail.new``, and
:mod:`~gameserver.mail.admin` sets up the resource and the ``POST /mail/send`` route.
"""

from gameserver.mail.errors import MailboxFull, MailNotFound, PlayerNotFound
from gameserver.mail.message import SYSTEM, Item, Mail
from gameserver.mail.post import NEW_MAIL, post, post_many, post_once_many
from gameserver.mail.store import MailStore

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
