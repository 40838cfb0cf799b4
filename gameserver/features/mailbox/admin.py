"""``POST /mail/send``: the game's operators send a system mail (or a gift) to one player or a whole world;
``POST /mail/broadcast``: the same to every player, by background jobs (:mod:`gameserver.features.mailbox.broadcast`).

Protected by ``mail.admin_key`` (config or ``GAMESERVER_MAIL__ADMIN_KEY``), given as
``Authorization: Bearer <key>`` or ``X-Admin-Key: <key>``. No key ships: until one is set the route answers
403 saying so. Body::

    {"to": <uid>} or {"world": <world>},
    "subject": str, "body": str, "items": [{"item": <ItemKind>, "count": n}] (optional),
    "from_name": str (optional, default "System")

Answers 200 ``{"sent": 1, "mail_id": str}`` for one player, ``{"sent": n}`` for a world; 404
``player_not_found`` for an unknown ``to``.

``POST /mail/broadcast`` takes the same body without ``to``: ``world`` (optional) limits it to one world, and
``key`` (optional, 1-100 characters) makes the request idempotent: a broadcast with a key used in the last
``jobs.key_ttl`` seconds is not sent again. Answers 202 ``{"broadcast_id": str, "queued": true}``, or 200 with
``"queued": false`` for a key used already; the mails arrive as the batches run.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from enums import MailKind
from gameserver.config import MailConfig
from gameserver.drivers.http import check_admin_key, read_json, timeout
from gameserver.errors import BadRequest
from gameserver.features.identity.accounts import account_by_uid, uids_in_world
from gameserver.features.jobs import Jobs
from gameserver.features.mailbox.broadcast import start_broadcast
from gameserver.features.mailbox.errors import PlayerNotFound
from gameserver.features.mailbox.maildir import check_id
from gameserver.features.mailbox.message import SYSTEM, Mail, check_items, check_text
from gameserver.features.mailbox.post import Push, post, post_many
from gameserver.features.mailbox.store import MailStore
from gameserver.storage.sql import Sql

FIELDS = {"to", "world", "subject", "body", "items", "from_name"}
BROADCAST_FIELDS = {"world", "subject", "body", "items", "from_name", "key"}
MAX_KEY = 100
SYSTEM_NAME = "System"


def admin_routes(*, config: MailConfig, db: Sql, store: MailStore, push: Push, jobs: Jobs) -> list[web.RouteDef]:
    @timeout(None)  # a world's mail is written in one thread that cannot be stopped halfway: answer when done
    async def send(request: web.Request) -> web.Response:
        check_admin_key(request, config.admin_key, "mail.admin_key")
        body = await read_json(request)
        result = await send_system_mail(body, config=config, db=db, store=store, push=push)
        return web.json_response(result)

    async def broadcast(request: web.Request) -> web.Response:
        check_admin_key(request, config.admin_key, "mail.admin_key")
        body = await read_json(request)
        broadcast_id, queued = await send_broadcast(body, config=config, jobs=jobs)
        return web.json_response({"broadcast_id": broadcast_id, "queued": queued}, status=202 if queued else 200)

    return [web.post("/mail/send", send), web.post("/mail/broadcast", broadcast)]


async def send_system_mail(
    body: dict[str, Any], *, config: MailConfig, db: Sql, store: MailStore, push: Push | None
) -> dict[str, Any]:
    """Check an admin request body and send it. Raises BadRequest or PlayerNotFound."""
    unknown = set(body) - FIELDS
    if unknown:
        raise BadRequest(f"unknown field {', '.join(sorted(unknown))}")
    if ("to" in body) == ("world" in body):
        raise BadRequest('give exactly one of "to" (a uid) and "world"')
    mail = system_mail(body, config)
    if "to" in body:
        uid = check_id("to", body["to"])
        async with db.read() as conn:
            account = await account_by_uid(conn, uid)
        if account is None:
            raise PlayerNotFound(f"no player {uid}")
        delivered = await post(store, push, account.world, uid, mail)
        return {"sent": 1, "mail_id": delivered.mail_id}
    world = check_id("world", body["world"], minimum=0)
    async with db.read() as conn:
        uids = await uids_in_world(conn, world)
    sent = await post_many(store, push, [(world, uid) for uid in uids], mail)
    return {"sent": len(sent)}


async def send_broadcast(body: dict[str, Any], *, config: MailConfig, jobs: Jobs) -> tuple[str, bool]:
    """Check a broadcast body and enqueue its first batch; returns the broadcast id and whether it was queued now
    (False: its ``key`` was used already). Raises BadRequest."""
    unknown = set(body) - BROADCAST_FIELDS
    if unknown:
        raise BadRequest(f"unknown field {', '.join(sorted(unknown))}")
    mail = system_mail(body, config)
    world = check_id("world", body["world"], minimum=0) if "world" in body else None
    key = body.get("key")
    if key is not None and not (isinstance(key, str) and 0 < len(key) <= MAX_KEY):
        raise BadRequest(f"key must be a string of 1-{MAX_KEY} characters")
    return await start_broadcast(jobs, mail, world=world, key=key)


def system_mail(body: dict[str, Any], config: MailConfig) -> Mail:
    """The system mail (a gift if it has items) that an admin body's ``subject``, ``body``, ``items`` and
    ``from_name`` describe. Raises BadRequest."""
    subject, text = check_text(
        body.get("subject"), body.get("body", ""), max_subject=config.max_subject, max_body=config.max_body
    )
    items = check_items(body.get("items"), max_items=config.max_items)
    name = body.get("from_name", SYSTEM_NAME)
    if not isinstance(name, str) or not 0 < len(name) <= 64:
        raise BadRequest("from_name must be a string of 1-64 characters")
    return Mail(MailKind.GIFT if items else MailKind.SYSTEM, SYSTEM, name, subject, text, items)
