from __future__ import annotations

from typing import Any

from gameserver.auth.service import AuthService
from gameserver.errors import UnknownFunction
from gameserver.session import Session


def _service(auth: AuthService | None) -> AuthService:
    if auth is None:
        raise UnknownFunction("auth functions are served by processes with the auth role")
    return auth


async def register(
    username: str,
    password: str,
    display_name: str | None = None,
    *,
    session: Session,
    auth: AuthService | None = None,
    **_: Any,
) -> dict[str, Any]:
    """Create an account and bind the connection to it. Returns {uid, token}; raises username_taken, bad_request."""
    result = await _service(auth).register(username, password, display_name)
    session.bind(result["uid"])
    await session.bound()  # answered once pushes from any process reach this connection
    return result


async def login(
    username: str, password: str, *, session: Session, auth: AuthService | None = None, **_: Any
) -> dict[str, Any]:
    """Log in and bind the connection. Returns {uid, token}; raises wrong_credentials, rate_limited."""
    result = await _service(auth).login(username, password, session.remote)
    session.bind(result["uid"])
    await session.bound()  # answered once pushes from any process reach this connection
    return result


async def nonce(*, uid: int, auth: AuthService | None = None, **_: Any) -> dict[str, Any]:
    """A single-use chat login nonce carrying the caller's identity. Returns {nonce, expires_in}."""
    return await _service(auth).nonce(uid)


async def refresh(*, uid: int, auth: AuthService | None = None, **_: Any) -> dict[str, Any]:
    """A fresh token for the caller (send it before the current one expires). Returns {uid, token}."""
    return await _service(auth).refresh(uid)
