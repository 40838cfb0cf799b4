"""What the auth role does, once for both doors: the HTTP routes (``/auth/*``) and the gate (``auth.*``).

Every answer is plain data; errors are :class:`GameError` subclasses that each door turns into its own form
(a gate reply, or a JSON body with the fitting HTTP status).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from gameserver.config import AuthConfig
from gameserver.errors import Unauthorized
from gameserver.features.identity.accounts import (
    Account,
    account_by_uid,
    account_by_username,
    create_account,
    set_password_hash,
)
from gameserver.features.identity.errors import WrongCredentials
from gameserver.features.identity.nonces import issue_nonce
from gameserver.features.identity.passwords import Passwords
from gameserver.features.identity.revocations import Revocations, now_ms
from gameserver.features.identity.throttle import LoginThrottle, RegistrationThrottle
from gameserver.features.identity.tokens import Claims, Tokens
from gameserver.features.identity.validation import (
    canonical_username,
    check_display_name,
    check_password,
    check_username,
)
from gameserver.features.moderation.store import Banned, Moderation
from gameserver.keys import Keys
from gameserver.storage.sql import Sql


@dataclass(frozen=True, slots=True)
class AuthService:
    """The ``auth`` resource: accounts, logins, tokens and nonces."""

    config: AuthConfig
    db: Sql
    redis: Redis
    keys: Keys
    tokens: Tokens
    passwords: Passwords
    throttle: LoginThrottle
    registrations: RegistrationThrottle
    revocations: Revocations
    moderation: Moderation | None = None  # refuses banned players' logins

    async def register(
        self, username: str, password: str, display_name: str | None = None, *, address: str
    ) -> dict[str, Any]:
        """Create an account in the default world; returns ``{uid, token}``.

        Args:
            address: the client's host, for the per-address registration limit.

        Raises:
            BadRequest: the username, password or display name is not acceptable.
            RegistrationThrottled: this address registered ``auth.register_limit`` times in the window.
            UsernameTaken: the username is in use (in any letter case).
        """
        config = self.config
        name = check_username(username, min_len=config.username_min, max_len=config.username_max)
        check_password(password, min_len=config.password_min, max_len=config.password_max)
        shown = check_display_name(username if display_name is None else display_name)
        await self.registrations.attempt(address)
        password_hash = await self.passwords.hash(password)
        async with self.db.transaction() as tx:
            uid = await create_account(
                tx, username=name, password_hash=password_hash, display_name=shown, world=config.world
            )
        return {"uid": uid, "token": self.tokens.issue(uid)}

    async def login(self, username: str, password: str, address: str) -> dict[str, Any]:
        """Check the credentials; returns ``{uid, token}``.

        Args:
            address: the client's host, for the per-address failure limit.

        Raises:
            LoginThrottled: too many failures for this username or address in the window.
            WrongCredentials: no such username, or another password.
            Banned: the credentials are right but the player is banned.
        """
        name = canonical_username(username)
        await self.throttle.attempt(name, address)
        async with self.db.transaction() as tx:
            account = await account_by_username(tx, name)
        matched = await self.passwords.verify(None if account is None else account.password_hash, password)
        if account is None or not matched:
            raise WrongCredentials()
        await self.throttle.succeeded(name, address)
        await self.check_ban(account.uid)
        if self.passwords.needs_rehash(account.password_hash):  # the configured cost changed since
            password_hash = await self.passwords.hash(password)
            async with self.db.transaction() as tx:
                await set_password_hash(tx, account.uid, password_hash)
        token = self.tokens.issue(account.uid, after=account.tokens_valid_after or 0)
        return {"uid": account.uid, "token": token}

    async def refresh(self, claims: Claims) -> dict[str, Any]:
        """A fresh token for a logged-in player, of the same login (``auth_time``); returns ``{uid, token}``.

        Raises:
            Banned: the player is banned.
            Unauthorized: the account no longer exists, the token is revoked, or the login is older than
                ``auth.session_max_age``.
        """
        account = await self._account(claims)
        await self.check_ban(account.uid)
        if time.time() - claims.auth_time >= self.config.session_max_age:
            raise Unauthorized("session older than auth.session_max_age: log in again")
        after = account.tokens_valid_after or 0
        return {"uid": account.uid, "token": self.tokens.issue(account.uid, auth_time=claims.auth_time, after=after)}

    async def nonce(self, claims: Claims) -> dict[str, Any]:
        """A single-use nonce carrying the player's identity for the chat edge; returns ``{nonce, expires_in}``.

        Raises:
            Unauthorized: the account no longer exists, or the token is revoked.
        """
        account = await self._account(claims)
        ttl = self.config.nonce_ttl
        identity = {**account.identity(), "issued_ms": now_ms()}  # the chat edge refuses it after a revocation
        nonce = await issue_nonce(self.redis, self.keys, identity, ttl)
        return {"nonce": nonce, "expires_in": int(ttl) if ttl.is_integer() else ttl}

    async def logout(self, uid: int) -> dict[str, Any]:
        """Revoke every token of ``uid`` issued up to now, on every process; returns ``{uid, revoked_before}``.

        Raises:
            AccountNotFound: there is no such account.
        """
        return {"uid": uid, "revoked_before": await self.revocations.revoke(uid)}

    async def check_ban(self, uid: int) -> None:
        """Raises :class:`Banned` if ``uid`` is banned now."""
        if self.moderation is not None:
            sanction = await self.moderation.banned(uid)
            if sanction is not None:
                raise Banned(sanction)

    async def _account(self, claims: Claims) -> Account:
        """The caller's account, checking that the token is not revoked (SQL: the truth, whatever this process
        has heard)."""
        async with self.db.transaction() as tx:
            account = await account_by_uid(tx, claims.uid)
        if account is None:
            raise Unauthorized("no such account")
        self.revocations.check(claims, account.tokens_valid_after)
        return account
