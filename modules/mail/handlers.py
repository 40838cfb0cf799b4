from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from enums import MailKind, ModuleErrorCode
from gameserver.config import Config
from gameserver.dispatch.idempotency import current_key
from gameserver.errors import BadRequest, GameError, RateLimited
from gameserver.features.mailbox import Mail, MailStore, post
from gameserver.features.mailbox.message import check_text
from gameserver.features.mailbox.post import Push
from gameserver.keys import Keys
from gameserver.storage.sql import Sql
from modules.common import player
from modules.inventory.items import add_items
from modules.mail.replies import MailClaimed, MailFull, MailId, MailPage
from modules.mail.settings import settings
from modules.mail.tables import mail_claims

MAX_PAGE_SIZE = 100


class AlreadyClaimed(GameError):
    code = ModuleErrorCode.ALREADY_CLAIMED
    message = "the gift in this mail was already claimed"


class NothingToClaim(GameError):
    code = ModuleErrorCode.NOTHING_TO_CLAIM
    message = "this mail carries no items"


async def list_mails(
    page: int = 0, size: int | None = None, *, uid: int, db: Sql, mail: MailStore, config: Config, **_: Any
) -> MailPage:
    """Returns {"mails": [{"mail_id", "from", "from_name", "subject", "unread", "claimed", ...}], "unread",
    "total", "page", "size"}, newest first; ``page`` counts from 0."""
    size = settings(config).page_size if size is None else size
    if page < 0 or not 0 < size <= MAX_PAGE_SIZE:
        raise BadRequest(f"page must be 0 or more and size from 1 to {MAX_PAGE_SIZE}")
    me = await player(db, uid)
    found = await mail.page(me.world, uid, page * size, size)
    claimed = await _claimed(db, uid, (m.mail_id for m in found.mails if m.items))
    return {
        "mails": [_shown(m, claimed) for m in found.mails],
        "unread": found.unread,
        "total": found.total,
        "page": page,
        "size": size,
    }


async def read(mail_id: str, *, uid: int, db: Sql, mail: MailStore, **_: Any) -> MailFull:
    """Returns the mail with its body and marks it read. Raises mail_not_found."""
    me = await player(db, uid)
    found = await mail.get(me.world, uid, mail_id, mark_seen=True)
    claimed = await _claimed(db, uid, [found.mail_id] if found.items else [])
    return {**_shown(found, claimed), "body": found.body}


async def delete(mail_id: str, *, uid: int, db: Sql, mail: MailStore, **_: Any) -> MailId:
    """Deletes the mail (an unclaimed gift goes with it); returns {"mail_id"}. Raises mail_not_found."""
    me = await player(db, uid)
    await mail.delete(me.world, uid, mail_id)
    return {"mail_id": mail_id}


async def send(
    to: int,
    subject: str,
    body: str,
    *,
    uid: int,
    db: Sql,
    redis: Redis,
    keys: Keys,
    config: Config,
    mail: MailStore,
    push: Push,
    **_: Any,
) -> MailId:
    """Mails another player; returns {"mail_id"}. Raises player_not_found, rate_limited, mailbox_full."""
    limits = config.mail
    subject, body = check_text(subject, body, max_subject=limits.max_subject, max_body=limits.max_body)
    if to == uid:
        raise BadRequest("cannot mail yourself")
    me = await player(db, uid)
    recipient = await player(db, to)
    own = settings(config)
    await count_send(redis, keys.mail_sent(uid), own.send_rate, own.send_window)
    call = current_key()  # with an idempotency key: one mail however often the request runs
    note = Mail(MailKind.PLAYER, uid, me.display_name, subject, body)
    sent = await post(mail, push, recipient.world, to, note, tag=call.tag() if call else None)
    return {"mail_id": sent.mail_id}


async def count_send(redis: Redis, key: str, rate: int, window: float) -> None:
    """Count one send in the current window (shared by every process through Redis); rate_limited past ``rate``."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(key, 0, px=int(window * 1000), nx=True)
        pipe.incr(key)
        _, sent = await pipe.execute()
    if int(sent) > rate:
        raise RateLimited(f"at most {rate} mails per {window:g} seconds")


async def claim(mail_id: str, *, uid: int, db: Sql, mail: MailStore, **_: Any) -> MailClaimed:
    """Moves the mail's items into the inventory, once; returns {"mail_id", "items"}.
    Raises mail_not_found, nothing_to_claim, already_claimed."""
    me = await player(db, uid)
    found = await mail.get(me.world, uid, mail_id, mark_seen=True)
    if not found.items:
        raise NothingToClaim()

    async def mark_and_move(tx: AsyncConnection) -> None:  # run again after a deadlock: touches nothing but tx
        try:
            await tx.execute(
                mail_claims.insert().values(
                    uid=uid, mail_id=found.mail_id, claimed_at=datetime.now(UTC).replace(tzinfo=None)
                )
            )
        except IntegrityError:
            raise AlreadyClaimed() from None
        await add_items(tx, uid, ((item.item, item.count) for item in found.items))

    await db.run(mark_and_move)
    return {"mail_id": found.mail_id, "items": [item.as_dict() for item in found.items]}


async def _claimed(db: Sql, uid: int, mail_ids: Iterable[str]) -> set[str]:
    wanted = list(mail_ids)
    if not wanted:
        return set()
    query = sa.select(mail_claims.c.mail_id).where(mail_claims.c.uid == uid, mail_claims.c.mail_id.in_(wanted))
    async with db.read() as conn:
        return {str(mail_id) for mail_id in (await conn.execute(query)).scalars()}


def _shown(mail: Mail, claimed: set[str]) -> dict[str, Any]:
    shown = mail.summary()
    if mail.items:
        shown["claimed"] = mail.mail_id in claimed
    return shown
