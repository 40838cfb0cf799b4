"""The HTTP listener (port 8000): health, metrics, and the routes the roles add (auth, config, ...).

Every error is JSON ``{"error": {"code", "message"}}`` with the fitting status (PROTOCOL.md, "HTTP"). A
:class:`GameError` may set ``status`` and ``headers`` (e.g. ``Retry-After``) for its HTTP answer. Bodies
are capped at ``http.max_body``; a handler's crash answers 500 ``internal`` / ``programming error`` and
logs the traceback. Behind a reverse proxy listed in ``http.trusted_proxies``, ``request.remote`` is the
client's address from ``X-Forwarded-For`` (``gameserver/forwarded.py``), so per-address limits see players,
not the proxy.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gameserver import metrics
from gameserver.dispatch import INTERNAL_MESSAGE
from gameserver.errors import BadRequest, Forbidden, GameError, Unauthorized
from gameserver.forwarded import HEADER, Network, client_address
from gameserver.storage.errors import is_unavailable

if TYPE_CHECKING:
    from gameserver.app import App

log = logging.getLogger("gameserver.http")

APP_KEY: web.AppKey[App] = web.AppKey("gameserver")
"""Where HTTP handlers find the running app: ``request.app[APP_KEY]``."""

Health = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]

STATUS_OF_CODE = {
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "unknown_function": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "too_big": 413,
    "rate_limited": 429,
    "internal": 500,
    "unavailable": 503,
    "overloaded": 503,
    "timeout": 504,
}


def json_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status, headers=headers)


@web.middleware
async def errors_as_json(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    try:
        return await handler(request)
    except GameError as exc:
        status = getattr(exc, "status", STATUS_OF_CODE.get(exc.code, 400))
        return json_error(status, exc.code, exc.message, getattr(exc, "headers", None))
    except web.HTTPRequestEntityTooLarge as exc:
        return json_error(413, "too_big", exc.text or "body too large")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "bad_request")
        return json_error(exc.status, code, exc.reason)
    except Exception as exc:
        if is_unavailable(exc):
            log.warning("%s %s: backend unavailable: %s", request.method, request.path, exc)
            return json_error(503, "unavailable", "a backend is unavailable")
        log.exception("internal error in %s %s", request.method, request.path)
        return json_error(500, "internal", INTERNAL_MESSAGE)


def forwarded_for(proxies: Sequence[Network]) -> Middleware:
    """A middleware that hands the handlers a request whose ``remote`` is the client behind ``proxies``."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.remote or ""
        client = client_address(peer, request.headers.getall(HEADER, ()), proxies)
        return await handler(request if client == peer else request.clone(remote=client))

    return middleware


def build_http_app(
    health: Health, routes: Sequence[web.RouteDef], *, max_body: int, trusted_proxies: Sequence[Network] = ()
) -> web.Application:
    """The routing table: health and metrics, then whatever the started roles contribute."""

    async def healthz(request: web.Request) -> web.Response:
        healthy, details = await health()
        return web.json_response(
            {"status": "ok" if healthy else "unhealthy", **details}, status=200 if healthy else 503
        )

    async def prometheus(request: web.Request) -> web.Response:
        body = generate_latest(metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    middlewares: list[Middleware] = [errors_as_json]
    if trusted_proxies:
        middlewares.append(forwarded_for(trusted_proxies))
    app = web.Application(middlewares=middlewares, client_max_size=max_body)
    app.add_routes([web.get("/healthz", healthz), web.get("/metrics", prometheus), *routes])
    return app


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or :class:`BadRequest` saying what is wrong with it."""
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def check_admin_key(request: web.Request, expected: str, setting: str) -> None:
    """Let an operator's request through: ``Authorization: Bearer <key>`` or ``X-Admin-Key: <key>``.

    Raises:
        Forbidden: no key is configured (``setting`` names where to set it): the route is off.
        Unauthorized: the request carries no key, or another one (compared in constant time).
    """
    if not expected:
        raise Forbidden(
            f"{setting} is not set: set it in config.toml or GAMESERVER_{setting.upper().replace('.', '__')}"
        )
    given = request.headers.get("X-Admin-Key", "")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if not given and scheme.lower() == "bearer":
        given = token.strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized(f"a valid admin key is required (Authorization: Bearer <{setting}>)")
