"""The auth feature's lifespan (composed in ``gameserver/app.py``).

Every process checks tokens: it loads the secret and yields the dispatcher's login check (``authenticate``:
signature, expiry, revocations known here), the ``tokens`` and ``revocations`` resources (``session.bind`` uses
them), and starts hearing revocations once the tables exist. A process with the ``auth`` role also serves
accounts: the ``auth`` resource behind the ``auth.*`` gate functions and the ``/auth/*`` HTTP routes, refusing
banned players, and the ``/moderation/*`` routes (a ban revokes tokens). The ``single_session`` resource closes a
player's other connections at a login or bind when ``auth.single_session`` is on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis

from gameserver.bus.local import Bus
from gameserver.bus.sessions import Sessions
from gameserver.config import AuthConfig
from gameserver.dispatch.dispatcher import Authenticate
from gameserver.features.identity.passwords import Passwords
from gameserver.features.identity.revocations import Revocations
from gameserver.features.identity.routes import auth_routes
from gameserver.features.identity.secret import load_secret
from gameserver.features.identity.service import AuthService
from gameserver.features.identity.single import SingleSession
from gameserver.features.identity.throttle import LoginThrottle, RegistrationThrottle
from gameserver.features.identity.tokens import Tokens
from gameserver.features.lifespan import Contribution
from gameserver.features.moderation.feature import ModerationFeature
from gameserver.features.moderation.routes import moderation_routes
from gameserver.keys import Keys
from gameserver.storage.sql import Sql


@dataclass
class Identity(Contribution):
    tokens: Tokens = field(kw_only=True)
    revocations: Revocations = field(kw_only=True)

    @property
    def authenticate(self) -> Authenticate:
        """The dispatcher's login check: signature, expiry, the revocations known here."""
        return self.revocations.authenticate


@asynccontextmanager
async def lifespan(
    config: AuthConfig,
    data_path: Path,
    *,
    db: Sql,
    redis: Redis,
    keys: Keys,
    sessions: Sessions,
    bus: Bus,
    serve_accounts: bool,
    moderation: ModerationFeature | None = None,
) -> AsyncIterator[Identity]:
    """Load the token secret (ConfigError if it is too short) and, with ``serve_accounts`` (the ``auth`` role),
    serve accounts (and, given ``moderation``, refuse banned players and serve the moderation routes)."""
    secret = load_secret(config, data_path)
    tokens = Tokens(secret, issuer=config.issuer, ttl=config.token_ttl, max_age=config.session_max_age)
    revocations = Revocations(tokens, db=db, sessions=sessions, bus=bus, keys=keys)
    single = SingleSession(sessions, bus, keys, enabled=config.single_session)

    async def start() -> None:
        await revocations.start()
        single.start()

    identity = Identity(
        resources={"tokens": tokens, "revocations": revocations, "single_session": single},
        on_listen=[start],  # after the tables are created, before clients connect
        tokens=tokens,
        revocations=revocations,
    )
    if serve_accounts:
        throttle = LoginThrottle(
            redis,
            keys,
            max_user=config.max_failures_user,
            max_addr=config.max_failures_addr,
            window=config.failure_window,
        )
        service = AuthService(
            config=config,
            db=db,
            redis=redis,
            keys=keys,
            tokens=tokens,
            passwords=Passwords.from_config(config),
            throttle=throttle,
            registrations=RegistrationThrottle(redis, keys, limit=config.register_limit, window=config.register_window),
            revocations=revocations,
            moderation=None if moderation is None else moderation.store,
        )
        identity.resources["auth"] = service
        identity.http_routes.extend(auth_routes(service))
        if moderation is not None:
            identity.http_routes.extend(moderation_routes(moderation.store, revocations, moderation.admin_key))
    try:
        yield identity
    finally:
        single.stop()
        await revocations.stop()
