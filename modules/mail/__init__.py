"""Mail between players, system mail and gifts (PROTOCOL.md, "Module functions").

Gate functions: ``mail.list``, ``mail.read``, ``mail.delete``, ``mail.send`` and ``mail.claim``. The mails
themselves live in the ``mail`` resource (:class:`gameserver.mail.MailStore`, one Maildir per player); the
SQL table ``mail_claims`` records which gifts were claimed. The recipient of a new mail gets the push
``mail.new``. Operators send system mail and gifts with ``POST /mail/send`` (:mod:`gameserver.mail.admin`).
"""

from modules.mail.handlers import claim, delete, list_mails, read, send

HANDLERS = {
    "list": list_mails,
    "read": read,
    "delete": delete,
    "send": send,
    "claim": claim,
}
