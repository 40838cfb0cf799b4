"""The ``mail`` resource: every player's Maildir under ``mail.root``, ``<root>/<world>/<uid>/``.

Handlers await its methods; the blocking file work runs in a thread (``asyncio.to_thread``), so a slow
disk (seed 003 puts the mail on a NAS) never stalls the event loop. Several processes may share the root:
everything they need to agree on is in the file system (unique keys, atomic renames, the count under a lock).

A box holds at most ``max_messages`` (``mail.max_messages``) mails *from players*: past it, a player's mail
(``mail.send``, a friend request) is refused with ``mailbox_full``, while mail from the game itself (sender
:data:`~gameserver.features.mailbox.message.SYSTEM`: ``POST /mail/send``, gifts, notices) is always delivered and counts
like any other. Nothing is evicted: a gift read but not claimed yet, or a mail the player keeps, is theirs to
delete; what operators send is bounded by what operators do, not by other players (docs/modules-reference.md, "Mail").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from gameserver.errors import BadRequest
from gameserver.features.mailbox.errors import MailNotFound
from gameserver.features.mailbox.maildir import Entry, Maildir, check_id, check_key, key_time_ns
from gameserver.features.mailbox.message import SYSTEM, Mail, compose, parse

log = logging.getLogger("gameserver.features.mailbox")


@dataclass(frozen=True, slots=True)
class Page:
    mails: list[Mail]
    total: int
    unread: int


class MailStore:
    """All players' mailboxes under ``root``.

    Args:
        root: the folder holding one folder per world; created if missing.
        max_messages: the most mails a box may hold when a player's mail arrives; None for no cap.
    """

    def __init__(self, root: Path, *, max_messages: int | None = None) -> None:
        self.root = root
        self.max_messages = max_messages

    def maildir(self, world: int, uid: int) -> Maildir:
        """The Maildir of ``uid`` in ``world``: ints from 1 (uid) and 0 (world), else :class:`BadRequest`."""
        path = self.root / str(check_id("world", world, minimum=0)) / str(check_id("uid", uid))
        return Maildir(path)

    async def deliver(self, world: int, uid: int, mail: Mail) -> Mail:
        """Store ``mail`` in ``uid``'s box; returns it with its ``mail_id`` and ``sent_at``.

        Raises:
            MailboxFull: the mail is from a player and the box holds ``max_messages`` mails.
        """
        mail = mail.stamped()
        box = self.maildir(world, uid)
        key = await asyncio.to_thread(box.deliver, compose(mail), limit=self._limit(mail))
        return replace(mail, mail_id=key, unread=True)

    async def deliver_tagged(self, world: int, uid: int, mail: Mail, tag: str) -> tuple[Mail, bool]:
        """:meth:`deliver`, once per ``tag`` (an idempotent request's
        :meth:`~gameserver.dispatch.idempotency.Call.tag`): a box holding a mail with that tag already is left as it
        is. Returns the mail, with the id of the one delivered first, and whether it was delivered now.

        Raises:
            MailboxFull: as :meth:`deliver`, for a mail to deliver now.
        """
        mail = mail.stamped()
        box = self.maildir(world, uid)
        key, new = await asyncio.to_thread(box.deliver_tagged, compose(mail), tag, limit=self._limit(mail))
        return replace(mail, mail_id=key, unread=True), new

    async def deliver_many(self, targets: Sequence[tuple[int, int]], mail: Mail) -> list[tuple[int, Mail]]:
        """The same mail to every ``(world, uid)``, in one thread; returns ``(uid, delivered mail)`` pairs."""
        mail = mail.stamped()
        boxes = [(uid, self.maildir(world, uid)) for world, uid in targets]
        data = compose(mail)
        limit = self._limit(mail)

        def work() -> list[tuple[int, Mail]]:
            return [(uid, replace(mail, mail_id=box.deliver(data, limit=limit), unread=True)) for uid, box in boxes]

        return await asyncio.to_thread(work)

    async def deliver_once_many(
        self, targets: Sequence[tuple[int, int]], mail: Mail, key: str
    ) -> list[tuple[int, Mail]]:
        """``mail`` under ``key`` to every ``(world, uid)`` whose box does not hold it yet, in one thread; returns
        ``(uid, delivered mail)`` for those that got it now (see :meth:`Maildir.deliver_once`)."""
        mail = replace(mail.stamped(), mail_id=key, unread=True)
        boxes = [(uid, self.maildir(world, uid)) for world, uid in targets]
        data = compose(mail)

        def work() -> list[tuple[int, Mail]]:
            return [(uid, mail) for uid, box in boxes if box.deliver_once(data, key)]

        return await asyncio.to_thread(work)

    def _limit(self, mail: Mail) -> int | None:
        return None if mail.sender == SYSTEM else self.max_messages

    async def page(self, world: int, uid: int, offset: int, limit: int) -> Page:
        """Mails newest first, ``limit`` of them from ``offset``, with the box's total and unread count."""
        box = self.maildir(world, uid)

        def work() -> Page:
            box.clean_tmp()
            entries = sorted(box.listing(), key=lambda e: (key_time_ns(e.key), e.key), reverse=True)
            unread = sum(1 for e in entries if not e.seen)
            mails = []
            for entry in entries[offset : offset + limit]:
                try:
                    mail = _load(box, entry)
                except FileNotFoundError:  # read (moved to cur/) or deleted since the listing
                    moved = box.find(entry.key)
                    mail = _load(box, moved) if moved is not None else None
                if mail is not None:
                    mails.append(mail)
            return Page(mails, len(entries), unread)

        return await asyncio.to_thread(work)

    async def get(self, world: int, uid: int, mail_id: str, *, mark_seen: bool = False) -> Mail:
        """One mail; with ``mark_seen`` it moves to ``cur/`` flagged seen. Raises :class:`MailNotFound`."""
        box = self.maildir(world, uid)
        key = _key(mail_id)

        def work() -> Mail:
            for _ in range(3):  # another reader may move the file between finding and opening it
                entry = box.find(key)
                if entry is None:
                    break
                try:
                    if mark_seen:
                        entry = box.mark_seen(entry)
                    mail = _load(box, entry)
                except FileNotFoundError:
                    continue
                if mail is None:
                    break
                return mail
            raise MailNotFound()

        return await asyncio.to_thread(work)

    async def delete(self, world: int, uid: int, mail_id: str) -> None:
        """Remove one mail. Raises :class:`MailNotFound`."""
        box = self.maildir(world, uid)
        key = _key(mail_id)

        def work() -> None:
            for _ in range(3):
                entry = box.find(key)
                if entry is None:
                    break
                try:
                    box.remove(entry)
                    return
                except FileNotFoundError:
                    continue
            raise MailNotFound()

        await asyncio.to_thread(work)


def _key(mail_id: object) -> str:
    try:
        return check_key(mail_id)
    except BadRequest:
        raise BadRequest("mail_id is not a mail id") from None


def _load(box: Maildir, entry: Entry) -> Mail | None:
    try:
        return parse(box.read(entry), mail_id=entry.key, unread=not entry.seen)
    except FileNotFoundError:
        raise
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        log.warning("skipping unreadable mail file %s", entry.path)
        return None
