"""Sending mail: deliver it to the Maildir, then tell the recipient if they are online.

The announcement is the server push ``{"event": "mail.new", "data": <the mail's summary>}`` (PROTOCOL.md,
"Server push") sent through the injected ``push``, which reaches the player on whichever process holds
their connection once the bus spans processes. Delivery comes first: a player told of a mail can read it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from gameserver.features.mailbox.message import Mail
from gameserver.features.mailbox.store import MailStore

NEW_MAIL = "mail.new"

Push = Callable[[int, str, Any], Any]


async def post(
    store: MailStore, push: Push | None, world: int, uid: int, mail: Mail, *, tag: str | None = None
) -> Mail:
    """Deliver ``mail`` to ``uid`` in ``world`` and push ``mail.new`` to them; returns the delivered mail. With
    ``tag``, once per tag (:meth:`MailStore.deliver_tagged`): a repeat returns the mail delivered first, unannounced."""
    if tag is None:
        delivered, new = await store.deliver(world, uid, mail), True
    else:
        delivered, new = await store.deliver_tagged(world, uid, mail, tag)
    if new:
        await _announce(push, uid, delivered)
    return delivered


async def post_many(store: MailStore, push: Push | None, targets: Sequence[tuple[int, int]], mail: Mail) -> list[Mail]:
    """:func:`post` to every ``(world, uid)``."""
    delivered = await store.deliver_many(targets, mail)
    for uid, one in delivered:
        await _announce(push, uid, one)
    return [one for _, one in delivered]


async def post_once_many(
    store: MailStore, push: Push | None, targets: Sequence[tuple[int, int]], mail: Mail, key: str
) -> list[Mail]:
    """:func:`post_many` under one mail id, ``key``, skipping the boxes that hold it already (a delivery that is
    done again: a retried broadcast batch); returns the mails delivered now, and only those are announced."""
    delivered = await store.deliver_once_many(targets, mail, key)
    for uid, one in delivered:
        await _announce(push, uid, one)
    return [one for _, one in delivered]


async def _announce(push: Push | None, uid: int, mail: Mail) -> None:
    if push is None:
        return
    result = push(uid, NEW_MAIL, mail.summary())
    if inspect.isawaitable(result):  # a bus whose push is a coroutine
        await result
