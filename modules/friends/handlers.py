from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from enums import MailKind, ModuleErrorCode
from gameserver.config import Config
from gameserver.dispatch.idempotency import current_key
from gameserver.errors import BadRequest, GameError
from gameserver.features.mailbox import Mail, MailboxFull, MailStore, post
from gameserver.features.mailbox.post import Push
from gameserver.features.notifications import Notifications
from gameserver.features.online import PresenceTracker
from gameserver.storage.sql import Sql
from modules.common import names, player
from modules.friends.links import (
    add_request,
    are_friends,
    befriend,
    count_friends,
    drop_request,
    friends_of,
    requests_to,
    unfriend,
)
from modules.friends.replies import Friend, FriendList, FriendRequested, FriendUid
from modules.friends.settings import settings

ACCEPTED = "friends.accepted"
REQUEST_SUBJECT = "Friend request"


class AlreadyFriends(GameError):
    code = ModuleErrorCode.ALREADY_FRIENDS
    message = "you are friends already"


class NotFriends(GameError):
    code = ModuleErrorCode.NOT_FRIENDS
    message = "you are not friends"


class FriendRequestNotFound(GameError):
    code = ModuleErrorCode.FRIEND_REQUEST_NOT_FOUND
    message = "no friend request from that player"


class TooManyFriends(GameError):
    code = ModuleErrorCode.TOO_MANY_FRIENDS
    message = "the friend list is full"


async def request(
    to: int, *, uid: int, db: Sql, config: Config, mail: MailStore, push: Push, **_: Any
) -> FriendRequested:
    """Asks ``to`` to be friends; they get a mail (kind FRIEND_REQUEST, data {"from"}) and answer with
    friends.accept or friends.decline. If ``to`` had asked the caller already, this accepts instead.
    Returns {"to", "accepted", "mail_id"}. Raises player_not_found, already_friends, too_many_friends,
    mailbox_full (``to``'s mailbox is full: no request is left behind)."""
    if to == uid:
        raise BadRequest("cannot befriend yourself")
    me = await player(db, uid)
    them = await player(db, to)

    async def ask(tx: AsyncConnection) -> tuple[bool, bool]:  # may run again after a deadlock: tx only
        if await are_friends(tx, uid, to):
            raise AlreadyFriends()
        if await drop_request(tx, to, uid):  # they asked first: this is a yes
            await _befriend(tx, uid, to, settings(config).max_friends)
            return True, False
        return False, await add_request(tx, uid, to)

    accepted, asked = await db.run(ask)  # then the push or the mail, once
    if accepted:
        push(to, ACCEPTED, {"uid": uid, "name": me.display_name})
        return {"to": to, "accepted": True, "mail_id": None}
    if not asked:  # asked before: no second mail
        return {"to": to, "accepted": False, "mail_id": None}
    note = Mail(
        MailKind.FRIEND_REQUEST,
        uid,
        me.display_name,
        REQUEST_SUBJECT,
        f"{me.display_name} would like to be your friend.",
        data={"from": uid},
    )
    try:
        call = current_key()  # with an idempotency key: one mail however often the request runs
        sent = await post(mail, push, them.world, to, note, tag=call.tag() if call else None)
    except MailboxFull:
        await db.run(drop_request, uid, to)  # the request and its mail go together, so the caller may ask again
        raise
    return {"to": to, "accepted": False, "mail_id": sent.mail_id}


async def accept(
    sender: int, *, uid: int, db: Sql, config: Config, push: Push, notify: Notifications | None = None, **_: Any
) -> Friend:
    """Accepts ``sender``'s request; returns {"uid", "name"} of the new friend, who gets the push
    friends.accepted (kept for their next login if they are offline). Raises friend_request_not_found,
    too_many_friends."""
    me = await player(db, uid)

    async def befriend_sender(tx: AsyncConnection) -> None:
        if not await drop_request(tx, sender, uid):
            raise FriendRequestNotFound()
        await _befriend(tx, uid, sender, settings(config).max_friends)

    await db.run(befriend_sender)
    if notify is not None:  # kept for the sender's next login if they are offline everywhere
        await notify(sender, ACCEPTED, {"uid": uid, "name": me.display_name})
    else:
        push(sender, ACCEPTED, {"uid": uid, "name": me.display_name})
    return {"uid": sender, "name": (await names(db, [sender])).get(sender, "")}


async def decline(sender: int, *, uid: int, db: Sql, **_: Any) -> FriendUid:
    """Declines ``sender``'s request; returns {"uid"}. Raises friend_request_not_found."""
    if not await db.run(drop_request, sender, uid):
        raise FriendRequestNotFound()
    return {"uid": sender}


async def remove(friend: int, *, uid: int, db: Sql, **_: Any) -> FriendUid:
    """Ends a friendship, for both; returns {"uid"}. Raises not_friends."""
    if not await db.run(unfriend, uid, friend):
        raise NotFriends()
    return {"uid": friend}


async def list_friends(*, uid: int, db: Sql, presence: PresenceTracker | None = None, **_: Any) -> FriendList:
    """Returns {"friends": [{"uid", "name", "online", "last_seen"}], "requests": [{"uid", "name"}]} (requests
    waiting for the caller)."""
    async with db.read() as conn:
        mine = await friends_of(conn, uid)
        waiting = await requests_to(conn, uid)
    shown = await names(db, mine + waiting)
    states = await presence.get(mine) if presence is not None and mine else {}  # none: a test without presence
    return {
        "friends": [{"uid": f, "name": shown.get(f, ""), **states.get(f, {})} for f in mine],
        "requests": [{"uid": r, "name": shown.get(r, "")} for r in waiting],
    }


async def _befriend(tx: AsyncConnection, uid: int, other: int, limit: int) -> None:
    if await count_friends(tx, uid) >= limit or await count_friends(tx, other) >= limit:
        raise TooManyFriends()
    try:
        await befriend(tx, uid, other)
    except IntegrityError:
        raise AlreadyFriends() from None
