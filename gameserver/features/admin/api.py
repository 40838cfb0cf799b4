"""The operations console's JSON API under ``/admin/api/`` and its static page under ``/admin/``.

Every route but login checks the session cookie and the admin's role on the server (:func:`Guard.route`); every
state-changing one (POST) also needs the login's CSRF token in ``X-CSRF-Token`` and is written to the audit log
with its outcome, refusals included. Roles: ``viewer`` reads, ``moderator`` also mails, kicks, revokes, mutes and bans,
``admin`` also edits inventories, sends gifts and retries or drops dead jobs.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources as package_files
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from enums import ItemKind
from gameserver.bus.local import Bus
from gameserver.bus.sessions import Sessions
from gameserver.config import Config
from gameserver.drivers.http import read_json
from gameserver.errors import BadRequest, Forbidden, GameError, Unauthorized
from gameserver.features.admin import audit, browse, players
from gameserver.features.admin.accounts import Admin, Role, admin_by_id, admin_by_name
from gameserver.features.admin.errors import NotServedHere, WrongAdminCredentials
from gameserver.features.admin.samples import read_samples
from gameserver.features.admin.sessions import COOKIE, CSRF_HEADER, AdminSessions
from gameserver.features.identity.passwords import Passwords
from gameserver.features.identity.revocations import Revocations
from gameserver.features.identity.throttle import Throttle
from gameserver.features.jobs import Jobs
from gameserver.features.mailbox.admin import send_system_mail
from gameserver.features.mailbox.post import Push
from gameserver.features.mailbox.store import MailStore
from gameserver.features.moderation.store import Moderation
from gameserver.features.nodes.store import NodeStore
from gameserver.keys import Keys
from gameserver.logship import LogFilter, read
from gameserver.storage.sql import Sql

log = logging.getLogger("gameserver.features.admin")

STATIC = {"index.html": "text/html", "admin.js": "text/javascript", "admin.css": "text/css"}
# The page loads nothing from elsewhere and runs no inline script: a script slipped into a player's name
# (shown in the page) cannot run.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
LOG_LIMIT = 500
DEAD_SHOWN = 100
AUDIT_SHOWN = 100
MAX_PASSWORD = 1024
MAX_REASON = 500


@dataclass
class Context:
    """What the console's routes work with: the resources, and what other features offer on this process
    (None where they do not run: ``mail`` and ``jobs`` need the worker role)."""

    config: Config
    db: Sql
    redis: Redis
    keys: Keys
    bus: Bus
    sessions: Sessions
    node: str
    logins: AdminSessions
    passwords: Passwords
    throttle: Throttle
    revocations: Revocations | None
    mail: MailStore | None
    push: Push | None
    jobs: Jobs | None
    nodes: NodeStore | None
    moderation: Moderation | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """An authorised request: who makes it, and its JSON body (POST) or {}."""

    admin: Admin
    body: dict[str, Any]


Handler = Callable[[web.Request, Call], Awaitable[Any]]


def _static(name: str) -> bytes:
    return package_files.files(__package__).joinpath("static", name).read_bytes()


def _target(request: web.Request) -> str:
    return " ".join(f"{key}={value}" for key, value in request.match_info.items())


class Guard:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def caller(self, request: web.Request) -> tuple[Admin, str]:
        """The logged-in admin and the login's CSRF token. Raises Unauthorized."""
        login = await self.ctx.logins.find(request.cookies.get(COOKIE, ""))
        if login is None:
            raise Unauthorized("log in to the operations console first")
        async with self.ctx.db.engine.connect() as conn:
            admin = await admin_by_id(conn, login.admin_id)
        if admin is None:
            raise Unauthorized("this admin account no longer exists")
        return admin, login.csrf

    def route(self, needed: Role, action: str | None = None) -> Callable[[Handler], Callable[..., Any]]:
        """A route for admins of role ``needed`` or above; with ``action``, a state-changing one (CSRF, audit)."""

        def wrap(handler: Handler) -> Callable[..., Any]:
            async def serve(request: web.Request) -> web.StreamResponse:
                admin, csrf = await self.caller(request)
                if action is None:
                    if not admin.role.allows(needed):
                        raise Forbidden(f"needs the {needed} role")
                    return web.json_response(await handler(request, Call(admin, {})))
                body: dict[str, Any] = {}
                outcome = "ok"
                try:
                    given = request.headers.get(CSRF_HEADER, "")
                    if not given or not hmac.compare_digest(given.encode(), csrf.encode()):
                        raise Forbidden(f"missing or wrong {CSRF_HEADER}")
                    if not admin.role.allows(needed):
                        raise Forbidden(f"needs the {needed} role")
                    body = await read_json(request) if request.can_read_body else {}
                    return web.json_response(await handler(request, Call(admin, body)))
                except GameError as exc:
                    outcome = exc.code
                    raise
                except Exception:
                    outcome = "internal"
                    raise
                finally:
                    await audit.record(
                        self.ctx.db,
                        admin=admin.name,
                        address=request.remote or "",
                        action=action,
                        target=_target(request),
                        detail=body,
                        outcome=outcome,
                    )

            return serve

        return wrap


def _int(request: web.Request, name: str, value: str | None = None) -> int:
    raw = request.match_info.get(name) if value is None else value
    try:
        return int(raw or "")
    except ValueError:
        raise BadRequest(f"{name} must be a whole number") from None


def sanction(body: dict[str, Any]) -> tuple[float | None, str]:
    """A mute's or ban's ``seconds`` (None: permanent) and ``reason`` from a request body. Raises BadRequest."""
    seconds, reason = body.get("seconds"), body.get("reason", "")
    if seconds is not None and (not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0):
        raise BadRequest("seconds: expected a positive number, or none for a permanent sanction")
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise BadRequest(f"reason: expected a string of at most {MAX_REASON} characters")
    return None if seconds is None else float(seconds), reason


def admin_routes(ctx: Context) -> list[web.RouteDef]:
    guard = Guard(ctx)
    viewer, moderator, admin = Role.VIEWER, Role.MODERATOR, Role.ADMIN

    async def index(request: web.Request) -> web.StreamResponse:
        if request.path == "/admin":
            raise web.HTTPFound("/admin/")
        return _page("index.html")

    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return _page(name)

    async def login(request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        name, password = body.get("name"), body.get("password")
        if not isinstance(name, str) or not isinstance(password, str) or not name or len(password) > MAX_PASSWORD:
            raise BadRequest('give "name" and "password" as strings')
        name = name.strip().lower()[:64]
        address = request.remote or ""
        counters = [ctx.keys.admin_failures_name(name), ctx.keys.admin_failures_addr(address or "unknown")]
        settings = ctx.config.admin
        outcome = "ok"
        try:
            await ctx.throttle.attempt(
                {counters[0]: settings.max_failures_name, counters[1]: settings.max_failures_addr}
            )
            async with ctx.db.engine.connect() as conn:
                found = await admin_by_name(conn, name)
            if not await ctx.passwords.verify(found.password_hash if found else None, password) or found is None:
                raise WrongAdminCredentials()
            await ctx.throttle.release(counters)
            session_id, opened = await ctx.logins.open(found.admin_id)
        except GameError as exc:
            outcome = exc.code
            raise
        finally:
            await audit.record(
                ctx.db, admin=name, address=address, action="login", target="", detail={}, outcome=outcome
            )
        response = web.json_response({**found.public(), "csrf": opened.csrf})
        response.set_cookie(
            COOKIE,
            session_id,
            path="/admin",
            max_age=int(settings.session_ttl),
            httponly=True,
            samesite="Strict",
            secure=settings.cookie_secure,
        )
        log.info("admin %s (%s) logged in from %s", found.name, found.role, address)
        return response

    @guard.route(viewer, "logout")
    async def logout(request: web.Request, call: Call) -> Any:
        await ctx.logins.close(request.cookies.get(COOKIE, ""))
        return {"logged_out": True}

    async def me(request: web.Request) -> web.StreamResponse:
        who, csrf = await guard.caller(request)
        items = [{"item": int(kind), "name": kind.name} for kind in ItemKind]
        return web.json_response({**who.public(), "csrf": csrf, "node": ctx.node, "items": items})

    @guard.route(viewer)
    async def search(request: web.Request, call: Call) -> Any:
        return {"players": await players.search(ctx.db, request.query.get("q", ""))}

    @guard.route(viewer)
    async def player(request: web.Request, call: Call) -> Any:
        uid = _int(request, "uid")
        shown = await players.profile(ctx.db, ctx.mail, uid, online_here=sum(1 for _ in ctx.sessions.of(uid)))
        if ctx.moderation is not None:
            muted, banned = await ctx.moderation.muted(uid), await ctx.moderation.banned(uid)
            shown["mute"] = None if muted is None else muted.as_dict()
            shown["ban"] = None if banned is None else banned.as_dict()
        return shown

    @guard.route(admin, "inventory.edit")
    async def inventory(request: web.Request, call: Call) -> Any:
        uid = _int(request, "uid")
        item = players.check_item(call.body.get("item"))
        count = await players.change_inventory(ctx.db, uid, item, call.body.get("delta"))  # type: ignore[arg-type]
        log.info("admin %s: uid %d now has %d of %s", call.admin.name, uid, count, item.name)
        return {"uid": uid, "item": int(item), "count": count}

    async def _send(request: web.Request, call: Call, *, gift: bool) -> Any:
        if ctx.mail is None:
            raise NotServedHere("mail is served by processes with the worker role")
        uid = _int(request, "uid")
        fields: dict[str, Any] = {k: call.body[k] for k in ("subject", "body", "from_name") if k in call.body}
        if gift:
            if not call.body.get("items"):
                raise BadRequest('a gift needs items: [{"item", "count"}]')
            fields["items"] = call.body["items"]
        elif "items" in call.body:
            raise BadRequest("mail carries no items: send a gift")
        sent = await send_system_mail(
            {"to": uid, **fields}, config=ctx.config.mail, db=ctx.db, store=ctx.mail, push=ctx.push
        )
        log.info("admin %s: %s %s to uid %d", call.admin.name, "gift" if gift else "mail", sent["mail_id"], uid)
        return {"uid": uid, "mail_id": sent["mail_id"]}

    @guard.route(moderator, "mail.send")
    async def mail(request: web.Request, call: Call) -> Any:
        return await _send(request, call, gift=False)

    @guard.route(admin, "gift.send")
    async def gift(request: web.Request, call: Call) -> Any:
        return await _send(request, call, gift=True)

    @guard.route(moderator, "player.kick")
    async def kick(request: web.Request, call: Call) -> Any:
        uid = _int(request, "uid")
        await players.account(ctx.db, uid)
        ctx.bus.publish(ctx.keys.admin_kick(), json.dumps({"uid": uid}).encode())
        log.info("admin %s kicked uid %d", call.admin.name, uid)
        return {"uid": uid, "kicked": True}

    @guard.route(moderator, "player.revoke")
    async def revoke(request: web.Request, call: Call) -> Any:
        if ctx.revocations is None:
            raise NotServedHere("token revocation is not set up on this process")
        uid = _int(request, "uid")
        before = await ctx.revocations.revoke(uid)
        return {"uid": uid, "tokens_valid_after": before}

    def _moderation() -> Moderation:
        if ctx.moderation is None:
            raise NotServedHere("moderation is not set up on this process")
        return ctx.moderation

    @guard.route(moderator, "player.mute")
    async def mute(request: web.Request, call: Call) -> Any:
        uid = _int(request, "uid")
        seconds, reason = sanction(call.body)
        await players.account(ctx.db, uid)
        muted = await _moderation().mute(uid, seconds=seconds, reason=reason, by=call.admin.name)
        return {"uid": uid, "mute": muted.as_dict()}

    @guard.route(moderator, "player.unmute")
    async def unmute(request: web.Request, call: Call) -> Any:
        uid = _int(request, "uid")
        return {"uid": uid, "lifted": await _moderation().unmute(uid, by=call.admin.name)}

    @guard.route(moderator, "player.ban")
    async def ban(request: web.Request, call: Call) -> Any:
        store = _moderation()
        if ctx.revocations is None:
            raise NotServedHere("token revocation is not set up on this process")
        uid = _int(request, "uid")
        seconds, reason = sanction(call.body)
        await ctx.revocations.revoke(uid)  # as POST /moderation/ban: the player's sessions end (404 if no player)
        banned = await store.ban(uid, seconds=seconds, reason=reason, by=call.admin.name)
        return {"uid": uid, "ban": banned.as_dict()}

    @guard.route(moderator, "player.unban")
    async def unban(request: web.Request, call: Call) -> Any:
        uid = _int(request, "uid")
        return {"uid": uid, "lifted": await _moderation().unban(uid, by=call.admin.name)}

    @guard.route(viewer)
    async def table_list(request: web.Request, call: Call) -> Any:
        return {"tables": browse.tables()}

    @guard.route(viewer)
    async def table_rows(request: web.Request, call: Call) -> Any:
        page = _int(request, "page", request.query.get("page", "0"))
        size = _int(request, "size", request.query.get("size", "50"))
        return await browse.page(ctx.db, request.match_info["name"], page=page, size=size)

    @guard.route(viewer)
    async def boards(request: web.Request, call: Call) -> Any:
        found = await players.leaderboards(ctx.db, players.boards(ctx.config))
        return {"boards": found if found is not None else {}}

    def _jobs() -> Jobs:
        if ctx.jobs is None:
            raise NotServedHere("background jobs are served by processes with the worker role")
        return ctx.jobs

    @guard.route(viewer)
    async def jobs(request: web.Request, call: Call) -> Any:
        queue = _jobs()
        dead = await queue.dead(DEAD_SHOWN)
        return {
            "counts": await queue.counts(),
            "dead": [
                {
                    "entry_id": d.entry_id,
                    "job_id": d.job_id,
                    "name": d.name,
                    "args": d.args,
                    "tries": d.tries,
                    "error": d.error,
                    "failed_at": d.failed_at,
                }
                for d in dead
            ],
        }

    async def _dead_letter(request: web.Request, change: str) -> Any:
        queue = _jobs()
        found, missing = await queue.find_dead([request.match_info["id"]])
        if missing:
            raise NotServedHere(f"no dead letter {request.match_info['id']}")
        done = await (queue.requeue(found) if change == "retry" else queue.drop(found))
        return {"done": [d.job_id or d.entry_id for d in done]}

    @guard.route(admin, "jobs.retry")
    async def retry(request: web.Request, call: Call) -> Any:
        return await _dead_letter(request, "retry")

    @guard.route(admin, "jobs.drop")
    async def drop(request: web.Request, call: Call) -> Any:
        return await _dead_letter(request, "drop")

    @guard.route(viewer)
    async def nodes(request: web.Request, call: Call) -> Any:
        if ctx.nodes is None:
            return {"nodes": []}
        return {"nodes": [record.to_json() for record in await ctx.nodes.live()]}

    @guard.route(viewer)
    async def metrics(request: web.Request, call: Call) -> Any:
        window = ctx.config.admin.metrics_window
        return {"window": window, "nodes": await read_samples(ctx.redis, ctx.keys, window=window)}

    @guard.route(viewer)
    async def logs(request: web.Request, call: Call) -> Any:
        try:
            wanted = LogFilter.of(request.query)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        limit = min(LOG_LIMIT, _int(request, "limit", request.query.get("limit", "200")))
        lines, last = await read(ctx.redis, ctx.keys.logs(), wanted, after=request.query.get("after", ""), limit=limit)
        return {"lines": lines, "last": last, "shipping": ctx.config.admin.ship_logs}

    @guard.route(viewer)
    async def audit_log(request: web.Request, call: Call) -> Any:
        before = request.query.get("before")
        rows = await audit.recent(ctx.db, limit=AUDIT_SHOWN, before=_int(request, "before", before) if before else None)
        return {"entries": rows}

    api = "/admin/api"
    return [
        web.get("/admin", index),
        web.get("/admin/", index),
        web.get("/admin/static/{name}", static),
        web.post(f"{api}/login", login),
        web.post(f"{api}/logout", logout),
        web.get(f"{api}/me", me),
        web.get(f"{api}/players", search),
        web.get(f"{api}/players/{{uid}}", player),
        web.post(f"{api}/players/{{uid}}/inventory", inventory),
        web.post(f"{api}/players/{{uid}}/mail", mail),
        web.post(f"{api}/players/{{uid}}/gift", gift),
        web.post(f"{api}/players/{{uid}}/kick", kick),
        web.post(f"{api}/players/{{uid}}/revoke", revoke),
        web.post(f"{api}/players/{{uid}}/mute", mute),
        web.post(f"{api}/players/{{uid}}/unmute", unmute),
        web.post(f"{api}/players/{{uid}}/ban", ban),
        web.post(f"{api}/players/{{uid}}/unban", unban),
        web.get(f"{api}/tables", table_list),
        web.get(f"{api}/tables/{{name}}", table_rows),
        web.get(f"{api}/leaderboards", boards),
        web.get(f"{api}/jobs", jobs),
        web.post(f"{api}/jobs/dead/{{id}}/retry", retry),
        web.post(f"{api}/jobs/dead/{{id}}/drop", drop),
        web.get(f"{api}/nodes", nodes),
        web.get(f"{api}/metrics", metrics),
        web.get(f"{api}/logs", logs),
        web.get(f"{api}/audit", audit_log),
    ]


def _page(name: str) -> web.Response:
    headers = {"Cache-Control": "no-cache", "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}
    return web.Response(body=_static(name), content_type=STATIC[name], headers=headers)
