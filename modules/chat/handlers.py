from __future__ import annotations

from typing import Any

from enums.errors import ModerationErrorCode, ModuleErrorCode
from gameserver.errors import BadRequest, GameError, UnknownFunction
from gameserver.features.chatedge import Chat
from gameserver.features.identity.accounts import account_by_uid
from gameserver.features.mailbox.errors import PlayerNotFound
from gameserver.features.moderation.store import MAX_REASON, Moderation
from gameserver.storage.sql import Sql
from modules.chat.replies import ChatHistory, ChatLine, Reported

MAX_COUNT = 1000


class NotInFamily(GameError):
    code = ModuleErrorCode.NOT_IN_FAMILY
    message = "not in a family"


class LineNotFound(GameError):
    code = ModerationErrorCode.LINE_NOT_FOUND
    message = "no such line in the channel's history"


async def _channel(db: Sql, chat: Chat, uid: int, channel: str) -> str:
    async with db.transaction() as tx:
        account = await account_by_uid(tx, uid)
    if account is None:
        raise PlayerNotFound()
    if channel == "public":
        return chat.keys.chat_public(account.world)
    if channel == "family":
        if account.family is None:
            raise NotInFamily()
        return chat.keys.chat_family(account.world, account.family)
    raise BadRequest('channel: expected "public" or "family"')


def _chat(chat: Chat | None) -> Chat:
    if chat is None:
        raise UnknownFunction("chat functions are served by processes with the worker or chat role")
    return chat


async def history(
    channel: str = "public", count: int = 20, *, uid: int, db: Sql, chat: Chat | None = None, **_: Any
) -> ChatHistory:
    """Returns {"lines": [{"id", "uid", "name", "text", "ts"}]} of the caller's world ("public") or family
    channel, oldest first; raises not_in_family."""
    served = _chat(chat)
    if type(count) is not int or not 0 <= count <= MAX_COUNT:
        raise BadRequest(f"count: expected 0-{MAX_COUNT}")
    lines = await served.history.latest(await _channel(db, served, uid, channel), count)
    return {"lines": [ChatLine(**line) for line in lines]}


async def report(
    line: str,
    channel: str = "public",
    reason: str = "",
    *,
    uid: int,
    db: Sql,
    moderation: Moderation,
    chat: Chat | None = None,
    **_: Any,
) -> Reported:
    """Report a chat line of the caller's world or family channel by its id. Returns {"report"} (its id); raises
    line_not_found once the line is no longer kept."""
    served = _chat(chat)
    if not isinstance(line, str) or not line or not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise BadRequest(f"expected a line id and a reason of at most {MAX_REASON} characters")
    name = await _channel(db, served, uid, channel)
    found = await served.history.find(name, line)
    if found is None:
        raise LineNotFound()
    report_id = await moderation.report(
        uid, channel=name, line=line, uid=found.get("uid"), text=found.get("text"), reason=reason
    )
    return {"report": report_id}
