"""A system mail to every player (``POST /mail/broadcast``), delivered by background jobs in batches.

The route enqueues the job ``mail.broadcast`` (modules/mail/jobs.py) for the first batch and answers at once.
Each batch is a job of its own: it reads the next ``modules.mail.broadcast_batch`` players by uid after its cursor,
enqueues the batch after it (keyed by the broadcast and the cursor, so a batch run twice enqueues its successor
once), then delivers. Batches therefore spread over every worker, and a failing batch is retried alone.

Delivery is idempotent: every copy of a broadcast has the same mail id, ``<sent_at in ns>.B<broadcast_id>``, fixed
when the broadcast starts, and a box that holds that id already is skipped
(:meth:`~gameserver.features.mailbox.maildir.Maildir.deliver_once`). A batch run again (a retry, or a worker that died
mid-batch) gives nobody a second mail, and since ``mail_claims`` is keyed by the mail id, nobody a second gift.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

import sqlalchemy as sa

from enums import MailKind
from gameserver.features.identity.accounts import accounts
from gameserver.features.jobs import Jobs
from gameserver.features.mailbox.message import SYSTEM, Item, Mail
from gameserver.storage.sql import Sql

JOB = "mail.broadcast"


async def start_broadcast(jobs: Jobs, mail: Mail, *, world: int | None, key: str | None) -> tuple[str, bool]:
    """Enqueue the first batch of a broadcast of ``mail`` (to ``world``'s players, or everyone's); returns the
    broadcast id and whether it was queued now (False: a broadcast with ``key`` was queued already)."""
    # One key, one id: a client that sends its request again learns the id of the broadcast it started.
    broadcast_id = hashlib.sha256(key.encode()).hexdigest()[:32] if key is not None else uuid.uuid4().hex
    sent_at = time.time_ns() // 1_000_000
    job_id = await jobs.enqueue(JOB, broadcast_id, as_message(mail), sent_at, world, 0, key=key)
    return broadcast_id, job_id is not None


def mail_id(broadcast_id: str, sent_at: int) -> str:
    """The id of every copy of a broadcast (a Maildir key that sorts by ``sent_at``, ms since the epoch)."""
    return f"{sent_at * 1_000_000}.B{broadcast_id}"


def as_message(mail: Mail) -> dict[str, Any]:
    """What a batch job carries of the mail: msgpack values only."""
    return {
        "kind": int(mail.kind),
        "from_name": mail.sender_name,
        "subject": mail.subject,
        "body": mail.body,
        "items": [item.as_dict() for item in mail.items],
    }


def from_message(message: dict[str, Any], sent_at: int) -> Mail:
    items = tuple(Item(int(item["item"]), int(item["count"])) for item in message["items"])
    kind = MailKind(int(message["kind"]))
    return Mail(
        kind, SYSTEM, str(message["from_name"]), str(message["subject"]), str(message["body"]), items, sent_at=sent_at
    )


async def players_after(db: Sql, after: int, limit: int, world: int | None) -> list[tuple[int, int]]:
    """Up to ``limit`` players with a uid above ``after``, in uid order, as ``(world, uid)``."""
    query = sa.select(accounts.c.world, accounts.c.uid).where(accounts.c.uid > after)
    if world is not None:
        query = query.where(accounts.c.world == world)
    query = query.order_by(accounts.c.uid).limit(limit)
    async with db.read() as conn:
        return [(int(w), int(uid)) for w, uid in (await conn.execute(query)).all()]
