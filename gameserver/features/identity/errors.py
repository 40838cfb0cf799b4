"""The auth errors clients switch on, with their HTTP statuses and headers (PROTOCOL.md, "HTTP")."""

from __future__ import annotations

from enums import AuthErrorCode
from gameserver.errors import GameError, Throttled, Unauthorized


class UsernameTaken(GameError):
    code = AuthErrorCode.USERNAME_TAKEN
    message = "that username is taken"
    status = 409


class WrongCredentials(GameError):
    code = AuthErrorCode.WRONG_CREDENTIALS
    message = "wrong username or password"
    status = 401


class LoginThrottled(Throttled):
    """Too many failed logins for this username or address."""

    message = "too many failed logins; try again later"


class RegistrationThrottled(Throttled):
    """Too many registrations from this address."""

    message = "too many registrations from this address; try again later"


class AccountNotFound(GameError):
    code = AuthErrorCode.ACCOUNT_NOT_FOUND
    message = "no such account"
    status = 404


class BearerRejected(Unauthorized):
    """An HTTP request without a valid ``Authorization: Bearer`` token (RFC 6750, 3: name the scheme)."""

    headers = {"WWW-Authenticate": 'Bearer realm="gameserver"'}
