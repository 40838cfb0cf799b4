"""``POST /mail/send``: the game's operators send a system mail (or a gift) to one player or a whole world.

Protected by ``mail.admin_key`` (config or ``GAMESERVER_MAIL__ADMIN_KEY``), given as
``Authorization: Bearer <key>`` or ``X-Admin-Key: <key>``. No key ships: until one is set the route answers
403 saying so. Body::

    {"to": <uid>} or {"world": <world>},
    "subject": str, "body": str, "items": [{"item": <ItemKind>, "count": n}] (optional),
    "from_name": str (optional, default "System")

Answers 200 ``{"sent": 1, "mail_id": str}`` for one player, ``{"sent": n}`` for a world; 404
``player_not_found`` for an unknown ``to``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from enums import MailKind
from gameserver.auth.accounts import account_by_uid, uids_in_world
from gameserver.config import MailConfig
from gameserver.errors import BadRequest
from gameserver.http import check_admin_key, read_json, timeout
from gameserver.mail.errors import PlayerNotFound
from gameserver.mail.maildir import check_id
from gameserver.mail.message import SYSTEM, Mail, check_items, check_text
from gameserver.mail.post import Push, post, post_many
from gameserver.mail.store import MailStore
from gameserver.storage.sql import Sql

FIELDS = {"to", "world", "subject", "body", "items", "from_name"}
SYSTEM_NAME = "System"


def admin_routes(*, config: MailConfig, db: Sql, store: MailStore, push: Push) -> list[web.RouteDef]:
    @timeout(None)  # a world's mail is written in one thread that cannot be stopped halfway: answer when done
    async def send(request: web.Request) -> web.Response:
        check_admin_key(request, config.admin_key, "mail.admin_key")
        body = await read_json(request)
        result = await send_system_mail(body, config=config, db=db, store=store, push=push)
        return web.json_response(result)

    return [web.post("/mail/send", send)]


async def send_system_mail(
    body: dict[str, Any], *, config: MailConfig, db: Sql, store: MailStore, push: Push | None
) -> dict[str, Any]:
    """Check an admin request body and send it. Raises BadRequest or PlayerNotFound."""
    unknown = set(body) - FIELDS
    if unknown:
        raise BadRequest(f"unknown field {', '.join(sorted(unknown))}")
    if ("to" in body) == ("world" in body):
        raise BadRequest('give exactly one of "to" (a uid) and "world"')
    subject, text = check_text(
        body.get("subject"), body.get("body", ""), max_subject=config.max_subject, max_body=config.max_body
    )
    items = check_items(body.get("items"), max_items=config.max_items)
    name = body.get("from_name", SYSTEM_NAME)
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        raise BadRequest("from_name must be a string of 1-64 characters")
    mail = Mail(MailKind.GIFT if items else MailKind.SYSTEM, SYSTEM, name, subject, text, items)
    if "to" in body:
        uid = check_id("to", body["to"])
        async with db.engine.connect() as conn:
            account = await account_by_uid(conn, uid)
        if account is None:
            raise PlayerNotFound(f"no player {uid}")
        delivered = await post(store, push, account.world, uid, mail)
        return {"sent": 1, "mail_id": delivered.mail_id}
    world = check_id("world", body["world"], minimum=0)
    async with db.engine.connect() as conn:
        uids = await uids_in_world(conn, world)
    sent = await post_many(store, push, [(world, uid) for uid in uids], mail)
    return {"sent": len(sent)}
