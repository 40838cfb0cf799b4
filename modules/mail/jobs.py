from __future__ import annotations

import logging
from typing import Any

from gameserver.config import Config
from gameserver.features.jobs import Jobs
from gameserver.features.mailbox import MailStore, post_once_many
from gameserver.features.mailbox.broadcast import JOB, from_message, mail_id, players_after
from gameserver.features.mailbox.post import Push
from gameserver.storage.sql import Sql
from modules.mail.settings import settings


async def broadcast(
    broadcast_id: str,
    message: dict[str, Any],
    sent_at: int,
    world: int | None = None,
    after: int = 0,
    *,
    db: Sql,
    mail: MailStore,
    jobs: Jobs,
    push: Push,
    config: Config,
    log: logging.Logger,
    **_: Any,
) -> None:
    """One batch of a broadcast (POST /mail/broadcast): the players after uid ``after``, each mailed once."""
    batch = settings(config).broadcast_batch
    targets = await players_after(db, after, batch, world)
    if len(targets) == batch:  # maybe more: the next batch is a job of its own, enqueued once whatever happens here
        cursor = targets[-1][1]
        await jobs.enqueue(JOB, broadcast_id, message, sent_at, world, cursor, key=f"{broadcast_id}.{cursor}")
    delivered = await post_once_many(
        mail, push, targets, from_message(message, sent_at), mail_id(broadcast_id, sent_at)
    )
    log.info(
        "broadcast %s: %d players after uid %d, %d mailed now (the others had it)",
        broadcast_id,
        len(targets),
        after,
        len(delivered),
    )
