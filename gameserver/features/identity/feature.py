"""The auth feature's set-up (``FEATURES`` in ``gameserver/app.py``).

Every process checks tokens: it loads the secret and sets ``app.authenticate`` (the dispatcher's login check:
signature, expiry, revocations known here), the ``tokens`` and ``revocations`` resources (``session.bind`` uses
them), and starts hearing revocations once the tables exist. A process with the ``auth`` role also serves
accounts: the ``auth`` resource behind the ``auth.*`` gate functions and the ``/auth/*`` HTTP routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gameserver.features.identity.passwords import Passwords
from gameserver.features.identity.revocations import Revocations
from gameserver.features.identity.routes import auth_routes
from gameserver.features.identity.secret import load_secret
from gameserver.features.identity.service import AuthService
from gameserver.features.identity.throttle import LoginThrottle, RegistrationThrottle
from gameserver.features.identity.tokens import Tokens

if TYPE_CHECKING:
    from gameserver.app import App


async def setup(app: App) -> None:
    """Load the token secret (ConfigError if it is too short) and, with the ``auth`` role, serve accounts."""
    config = app.config.auth
    resources = app.resources
    secret = load_secret(config, app.config.data_path)
    tokens = Tokens(secret, issuer=config.issuer, ttl=config.token_ttl, max_age=config.session_max_age)
    revocations = Revocations(
        tokens, db=resources.db, sessions=resources.sessions, bus=resources.bus, keys=resources.keys
    )
    app.authenticate = revocations.authenticate
    resources.extra["tokens"] = tokens
    resources.extra["revocations"] = revocations
    app.listen_hooks.append(revocations.start)  # after the tables are created, before clients connect
    app.shutdown_hooks.append(revocations.stop)
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
        registrations=RegistrationThrottle(
            resources.redis, resources.keys, limit=config.register_limit, window=config.register_window
        ),
        revocations=revocations,
    )
    resources.extra["auth"] = service
    app.http_routes.extend(auth_routes(service))
