"""Console logins: a random session id in an HttpOnly, SameSite=Strict cookie, and a CSRF token per login.

The store (Redis, so every process behind a load balancer knows the login) keeps, under the SHA-256 of the
session id, the admin's id and the CSRF token; a stolen copy of the store holds no usable cookie. The page gets
the CSRF token in the login answer (and from ``GET /admin/api/me``) and sends it as ``X-CSRF-Token`` with every
state-changing request: a cross-site form cannot read it, so it cannot send it (OWASP's synchronizer token).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

from gameserver.keys import Keys

COOKIE = "gs_admin"
CSRF_HEADER = "X-CSRF-Token"
TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class Login:
    admin_id: int
    csrf: str


class AdminSessions:
    """Console logins in Redis, each for ``ttl`` seconds from the login."""

    def __init__(self, redis: Redis, keys: Keys, *, ttl: float) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_ms = int(ttl * 1000)

    def _key(self, session_id: str) -> str:
        return self.keys.admin_session(hashlib.sha256(session_id.encode()).hexdigest())

    async def open(self, admin_id: int) -> tuple[str, Login]:
        """A new login of ``admin_id``: its session id (the cookie's value) and what the store keeps."""
        session_id = secrets.token_urlsafe(TOKEN_BYTES)
        login = Login(admin_id, secrets.token_urlsafe(TOKEN_BYTES))
        value = json.dumps({"admin_id": admin_id, "csrf": login.csrf})
        await self.redis.set(self._key(session_id), value, px=self.ttl_ms)
        return session_id, login

    async def find(self, session_id: str) -> Login | None:
        if not session_id or len(session_id) > 2 * TOKEN_BYTES:
            return None
        raw = await self.redis.get(self._key(session_id))
        if raw is None:
            return None
        value = json.loads(raw)
        return Login(int(value["admin_id"]), str(value["csrf"]))

    async def close(self, session_id: str) -> None:
        await self.redis.delete(self._key(session_id))
