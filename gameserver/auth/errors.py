"""The auth errors clients switch on, with their HTTP statuses and headers (PROTOCOL.md, "HTTP")."""

from __future__ import annotations

from enums import AuthErrorCode
from gameserver.errors import GameError, RateLimited, Unauthorized


class UsernameTaken(GameError):
    code = AuthErrorCode.USERNAME_TAKEN
    message = "that username is taken"
    status = 409


class WrongCredentials(GameError):
    code = AuthErrorCode.WRONG_CREDENTIALS
    message = "wrong username or password"
    status = 401


class LoginThrottled(RateLimited):
    """Too many failed logins for this username or address; ``retry_after`` is in whole seconds."""

    message = "too many failed logins; try again later"

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


class BearerRejected(Unauthorized):
    """An HTTP request without a valid ``Authorization: Bearer`` token (RFC 6750, 3: name the scheme)."""

    headers = {"WWW-Authenticate": 'Bearer realm="gameserver"'}
