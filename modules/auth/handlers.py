from __future__ import annotations

from typing import Any

from gameserver.bus.sessions import Session
from gameserver.errors import Unauthorized, UnknownFunction
from gameserver.features.identity.service import AuthService
from gameserver.features.identity.single import SingleSession
from gameserver.features.identity.tokens import Claims
from modules.auth.replies import AuthSession, ChatNonce, LoggedOut


def _service(auth: AuthService | None) -> AuthService:
    if auth is None:
        raise UnknownFunction("auth functions are served by processes with the auth role")
    return auth


async def _bind(
    session: Session,
    auth: AuthService,
    result: dict[str, Any],
    single: SingleSession | None,
    how: str,
    resume: bool,
) -> dict[str, Any]:
    claims = auth.tokens.claims(result["token"])
    if not auth.revocations.allows(claims):  # revoked (an operator's revoke) while the login ran
        raise Unauthorized("token revoked")
    session.bind(claims.uid, claims)
    if single is not None:
        single.replace(session, how)  # auth.single_session: the player's other connections close
    await session.bound()  # answered once pushes from any process reach this connection
    if resume:
        info = session.resumable()
        if info is not None:
            result["resume"] = info
    return result


async def register(
    username: str,
    password: str,
    display_name: str | None = None,
    resume: bool = False,
    *,
    session: Session,
    auth: AuthService | None = None,
    single_session: SingleSession | None = None,
    **_: Any,
) -> AuthSession:
    """Create an account and bind the connection to it. Returns {uid, token} (and, asked with resume, the session's
    resume token: docs/PROTOCOL.md, "Resume"); raises username_taken, bad_request, rate_limited."""
    service = _service(auth)
    result = await service.register(username, password, display_name, address=session.remote)
    return await _bind(session, service, result, single_session, "login", resume)


async def login(
    username: str,
    password: str,
    resume: bool = False,
    *,
    session: Session,
    auth: AuthService | None = None,
    single_session: SingleSession | None = None,
    **_: Any,
) -> AuthSession:
    """Log in and bind the connection. Returns {uid, token} (and, asked with resume, the session's resume token);
    raises wrong_credentials, rate_limited, banned."""
    service = _service(auth)
    result = await service.login(username, password, session.remote)
    return await _bind(session, service, result, single_session, "login", resume)


def _token(claims: Claims | None) -> Claims:
    if claims is None:  # a connection bound by module code (session.bind(uid)) rather than by a login or token
        raise Unauthorized("log in or send a token")
    return claims


async def nonce(*, claims: Claims | None, auth: AuthService | None = None, **_: Any) -> ChatNonce:
    """A single-use chat login nonce carrying the caller's identity. Returns {nonce, expires_in}."""
    return await _service(auth).nonce(_token(claims))


async def refresh(*, claims: Claims | None, auth: AuthService | None = None, **_: Any) -> AuthSession:
    """A fresh token for the caller (send it before the current one expires). Returns {uid, token}; raises
    unauthorized once the login is older than auth.session_max_age."""
    return await _service(auth).refresh(_token(claims))


async def logout(*, uid: int, session: Session, auth: AuthService | None = None, **_: Any) -> LoggedOut:
    """Revoke every token of the caller issued up to now and close their other gate connections; this one stays
    open, unbound. Returns {uid, revoked_before}."""
    service = _service(auth)
    if session.uid == uid:
        session.unbind()  # before the revocation, which closes the connections bound to the player
    return await service.logout(uid)
