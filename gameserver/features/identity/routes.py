"""The auth role's HTTP routes (PROTOCOL.md, "HTTP"):

| route | body / header | answer |
|---|---|---|
| ``POST /auth/register`` | ``{"username", "password", "display_name"?}`` | 201 ``{uid, token}``; 409; 400 |
| ``POST /auth/login`` | ``{"username", "password"}`` | 200 ``{uid, token}``; 401; 400; 429 |
| ``POST /auth/nonce`` | ``Authorization: Bearer <token>`` | 200 ``{nonce, expires_in}``; 401 |
| ``POST /auth/refresh`` | ``Authorization: Bearer <token>`` | 200 ``{uid, token}``; 401 |
| ``POST /auth/logout`` | ``Authorization: Bearer <token>`` | 200 ``{uid, revoked_before}``; 401 |
| ``POST /auth/revoke`` | ``Bearer <auth.admin_key>``, ``{"uid"}`` | 200 ``{uid, revoked_before}``; 404; 403 |

``request.remote`` is the client's address, behind a trusted proxy too (``gameserver/drivers/http.py``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gameserver.drivers.http import check_admin_key, read_json
from gameserver.errors import BadRequest, Unauthorized
from gameserver.features.identity.errors import BearerRejected
from gameserver.features.identity.service import AuthService
from gameserver.features.identity.tokens import Claims


def auth_routes(service: AuthService) -> list[web.RouteDef]:
    async def register(request: web.Request) -> web.Response:
        body = _fields(await read_json(request), required=("username", "password"), optional=("display_name",))
        return web.json_response(await service.register(**body, address=request.remote or ""), status=201)

    async def login(request: web.Request) -> web.Response:
        body = _fields(await read_json(request), required=("username", "password"))
        return web.json_response(await service.login(body["username"], body["password"], request.remote or ""))

    async def nonce(request: web.Request) -> web.Response:
        return web.json_response(await service.nonce(_caller(request, service)))

    async def refresh(request: web.Request) -> web.Response:
        return web.json_response(await service.refresh(_caller(request, service)))

    async def logout(request: web.Request) -> web.Response:
        return web.json_response(await service.logout(_caller(request, service).uid))

    async def revoke(request: web.Request) -> web.Response:
        check_admin_key(request, service.config.admin_key, "auth.admin_key")
        body = await read_json(request)
        uid = body.get("uid")
        if set(body) != {"uid"} or not isinstance(uid, int) or isinstance(uid, bool) or uid < 1:
            raise BadRequest('expected {"uid": <a player\'s uid>}')
        return web.json_response(await service.logout(uid))

    return [
        web.post("/auth/register", register),
        web.post("/auth/login", login),
        web.post("/auth/nonce", nonce),
        web.post("/auth/refresh", refresh),
        web.post("/auth/logout", logout),
        web.post("/auth/revoke", revoke),
    ]


def _fields(body: dict[str, Any], *, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, str]:
    """The body's string fields, or :class:`BadRequest` naming the first unknown, missing or non-string one."""
    for name in body:
        if name not in required and name not in optional:
            raise BadRequest(f"unknown field {name!r}; expected {', '.join(required + optional)}")
    for name in required:
        if name not in body:
            raise BadRequest(f"missing field {name!r}")
    for name, value in body.items():
        if not isinstance(value, str):
            raise BadRequest(f"{name} must be a string")
    return body


def _caller(request: web.Request, service: AuthService) -> Claims:
    """The claims of the request's bearer token (not revoked, as far as this process knows), or 401 with
    ``WWW-Authenticate``."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BearerRejected("expected the header Authorization: Bearer <token>")
    try:
        return service.revocations.authenticate(token.strip())
    except Unauthorized as exc:
        raise BearerRejected(exc.message) from None
