"""Mail between players, system mail and gifts (PROTOCOL.md, "Module functions").

Gate functions: ``mail.list``, ``mail.read``, ``mail.delete``, ``mail.send`` and ``mail.claim``. The mails
themselves live in the ``mail`` resource (:class:`gameserver.features.mailbox.MailStore`, one Maildir per player); the
SQL table ``mail_claims`` records which gifts were claimed. The recipient of a new mail gets the push
``mail.new``. Operators send system mail and gifts with ``POST /mail/send``
(:mod:`gameserver.features.mailbox.admin`), and
to every player with ``POST /mail/broadcast``, which the background job ``mail.broadcast`` delivers in batches
(:mod:`gameserver.features.mailbox.broadcast`).
"""

from gameserver.dispatch.registry import handler
from gameserver.features.jobs import job
from modules.mail.handlers import claim, delete, list_mails, read, send
from modules.mail.jobs import broadcast
from modules.mail.settings import MailSettings

SETTINGS = MailSettings  # [modules.mail] in config.toml

HANDLERS = {
    "list": list_mails,
    "read": read,
    "delete": handler(delete, idempotent=True),
    "send": handler(send, idempotent=True),
    "claim": handler(claim, idempotent=True),
}

JOBS = {
    "broadcast": job(broadcast, timeout=300.0),  # one batch: modules.mail.broadcast_batch Maildir deliveries
}
