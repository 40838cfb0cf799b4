"""The moderation routes (docs/PROTOCOL.md, "Moderation"), behind ``moderation.admin_key``:

| route | body / query | answer |
|---|---|---|
| ``POST /moderation/mute`` | ``{"uid", "seconds"?, "reason"?}`` | 200 the mute ``{uid, until, reason, by, at}`` |
| ``POST /moderation/unmute`` | ``{"uid"}`` | 200 ``{uid, lifted}`` |
| ``POST /moderation/ban`` | ``{"uid", "seconds"?, "reason"?}`` | 200 the ban; the player's tokens are revoked |
| ``POST /moderation/unban`` | ``{"uid"}`` | 200 ``{uid, lifted}`` |
| ``POST /moderation/kick`` | ``{"uid", "reason"?}`` | 200 ``{uid, revoked_before}``: every connection closes |
| ``GET /moderation/players/{uid}`` | | 200 ``{uid, mute, ban}`` (null when none) |
| ``GET /moderation/reports`` | ``?status=open|all&limit=`` | 200 ``{reports: [...]}`` oldest first |
| ``POST /moderation/reports/{id}/resolve`` | ``{"note"?}`` | 200 the report; 404 ``report_not_found`` |
| ``GET /moderation/log`` | ``?uid=&limit=`` | 200 ``{entries: [...]}`` newest first |

Who acted is the ``X-Moderator`` header (the operator's name; ``admin`` without it), kept in the log with every
action. A missing ``seconds`` is a permanent sanction.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gameserver.drivers.http import check_admin_key, read_json
from gameserver.errors import BadRequest
from gameserver.features.identity.revocations import Revocations
from gameserver.features.moderation.store import Moderation

MAX_MODERATOR = 64
MAX_LIMIT = 1000


def moderation_routes(moderation: Moderation, revocations: Revocations, admin_key: str) -> list[web.RouteDef]:
    def operator(request: web.Request) -> str:
        check_admin_key(request, admin_key, "moderation.admin_key")
        return request.headers.get("X-Moderator", "admin").strip()[:MAX_MODERATOR] or "admin"

    async def mute(request: web.Request) -> web.Response:
        by = operator(request)
        uid, seconds, reason = _sanction(await read_json(request))
        sanction = await moderation.mute(uid, seconds=seconds, reason=reason, by=by)
        return web.json_response({"uid": uid, **sanction.as_dict()})

    async def unmute(request: web.Request) -> web.Response:
        by = operator(request)
        uid = _uid(await read_json(request), ())
        return web.json_response({"uid": uid, "lifted": await moderation.unmute(uid, by=by)})

    async def ban(request: web.Request) -> web.Response:
        by = operator(request)
        uid, seconds, reason = _sanction(await read_json(request))
        await revocations.revoke(uid)  # 404 for no such account, before anything is recorded
        sanction = await moderation.ban(uid, seconds=seconds, reason=reason, by=by)
        return web.json_response({"uid": uid, **sanction.as_dict()})

    async def unban(request: web.Request) -> web.Response:
        by = operator(request)
        uid = _uid(await read_json(request), ())
        return web.json_response({"uid": uid, "lifted": await moderation.unban(uid, by=by)})

    async def kick(request: web.Request) -> web.Response:
        by = operator(request)
        body = await read_json(request)
        uid = _uid(body, ("reason",))
        reason = _text(body, "reason")
        before = await revocations.revoke(uid)
        await moderation.record("kick", by, uid, {"reason": reason})
        return web.json_response({"uid": uid, "revoked_before": before})

    async def player(request: web.Request) -> web.Response:
        operator(request)
        uid = _int(request.match_info["uid"], "uid")
        muted, banned = await moderation.muted(uid), await moderation.banned(uid)
        return web.json_response(
            {
                "uid": uid,
                "mute": None if muted is None else muted.as_dict(),
                "ban": None if banned is None else banned.as_dict(),
            }
        )

    async def reports(request: web.Request) -> web.Response:
        operator(request)
        status = request.query.get("status", "open")
        if status not in ("open", "all"):
            raise BadRequest("status: expected open or all")
        limit = _int(request.query.get("limit", "100"), "limit", top=MAX_LIMIT)
        return web.json_response({"reports": await moderation.reports(status=status, limit=limit)})

    async def resolve(request: web.Request) -> web.Response:
        by = operator(request)
        report_id = _int(request.match_info["id"], "id")
        body = await read_json(request) if request.can_read_body else {}
        if set(body) - {"note"}:
            raise BadRequest('expected {"note"?: <text>}')
        return web.json_response(await moderation.resolve(report_id, by=by, note=_text(body, "note")))

    async def history(request: web.Request) -> web.Response:
        operator(request)
        limit = _int(request.query.get("limit", "100"), "limit", top=MAX_LIMIT)
        uid = request.query.get("uid")
        entries = await moderation.history(limit=limit, uid=None if uid is None else _int(uid, "uid"))
        return web.json_response({"entries": entries})

    return [
        web.post("/moderation/mute", mute),
        web.post("/moderation/unmute", unmute),
        web.post("/moderation/ban", ban),
        web.post("/moderation/unban", unban),
        web.post("/moderation/kick", kick),
        web.get("/moderation/players/{uid}", player),
        web.get("/moderation/reports", reports),
        web.post("/moderation/reports/{id}/resolve", resolve),
        web.get("/moderation/log", history),
    ]


def _uid(body: dict[str, Any], optional: tuple[str, ...]) -> int:
    uid = body.get("uid")
    unknown = set(body) - {"uid", *optional}
    if unknown or not isinstance(uid, int) or isinstance(uid, bool) or uid < 1:
        fields = ", ".join(f'"{name}"?' for name in optional)
        raise BadRequest(f'expected {{"uid": <a player\'s uid>{", " + fields if fields else ""}}}')
    return uid


def _sanction(body: dict[str, Any]) -> tuple[int, float | None, str]:
    uid = _uid(body, ("seconds", "reason"))
    seconds = body.get("seconds")
    if seconds is not None and (not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds <= 0):
        raise BadRequest("seconds: expected a positive number, or none for a permanent sanction")
    return uid, None if seconds is None else float(seconds), _text(body, "reason")


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise BadRequest(f"{name}: expected a string")
    return value


def _int(text: str, name: str, *, top: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name}: expected a positive integer") from None
    if value < 1 or (top is not None and value > top):
        raise BadRequest(f"{name}: expected 1-{top}" if top else f"{name}: expected a positive integer")
    return value
