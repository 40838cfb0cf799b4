"""The console's errors, with their HTTP statuses."""

from __future__ import annotations

from gameserver.errors import GameError, Throttled


class AdminLoginThrottled(Throttled):
    """Too many failed console logins for this admin name or client address."""

    message = "too many failed admin logins; try again later"


class WrongAdminCredentials(GameError):
    code = "wrong_credentials"
    message = "wrong name or password"
    status = 401


class NotServedHere(GameError):
    """What the route needs runs on processes with other roles (mail and jobs: ``worker``)."""

    code = "not_found"
    message = "not served by this process"
    status = 404


class AdminNameTaken(GameError):
    code = "admin_name_taken"
    message = "an admin account with that name exists"
    status = 409
