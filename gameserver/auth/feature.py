"""The auth feature's set-up (``FEATURES`` in ``gameserver/app.py``).

Every process checks tokens: it loads the secret and sets ``app.authenticate`` (the dispatcher's login check)
and the ``tokens`` resource (``session.bind`` uses it). A process with the ``auth`` role also serves accounts:
the ``auth`` resource behind the ``auth.*`` gate functions and the ``/auth/*`` HTTP routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gameserver.auth.passwords import Passwords
from gameserver.auth.routes import auth_routes
from gameserver.auth.secret import load_secret
from gameserver.auth.service import AuthService
from gameserver.auth.throttle import LoginThrottle
from gameserver.auth.tokens import Tokens

if TYPE_CHECKING:
    from gameserver.app import App


async def setup(app: App) -> None:
    """Load the token secret (ConfigError if it is too short) and, with the ``auth`` role, serve accounts."""
    config = app.config.auth
    resources = app.resources
    tokens = Tokens(load_secret(config, app.config.data_path), issuer=config.issuer, ttl=config.token_ttl)
    app.authenticate = tokens.verify
    resources.extra["tokens"] = tokens
    if "auth" not in app.roles:
        return
    throttle = LoginThrottle(
        resources.redis,
        resources.keys,
        max_user=config.max_failures_user,
        max_addr=config.max_failures_addr,
        window=config.failure_window,
    )
    service = AuthService(
        config=config,
        db=resources.db,
        redis=resources.redis,
        keys=resources.keys,
        tokens=tokens,
        passwords=Passwords.from_config(config),
        throttle=throttle,
    )
    resources.extra["auth"] = service
    app.http_routes.extend(auth_routes(service))
