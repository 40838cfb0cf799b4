"""Revoked tokens: logout and the operators' revoke, checked on every process (docs/auth.md, "Revocation").

The truth is the account's ``tokens_valid_after`` in SQL (ms since the epoch): tokens issued at or before it
are revoked. Checking SQL on every request would put a query on the dispatcher's hot path, so each process
keeps ``uid -> tokens_valid_after`` in memory for the per-request check (:meth:`Revocations.authenticate`,
the dispatcher's ``Authenticate`` hook), and the async points that load the account anyway (``auth.refresh``,
``auth.nonce``, ``session.bind``) check SQL itself (:meth:`Revocations.confirm`, :meth:`Revocations.check`).

The map is filled from SQL at start-up (the revocations younger than a token's lifetime: older ones revoke
only expired tokens) and kept current through the bus: :meth:`Revocations.revoke` writes SQL, applies the
revocation here at once and publishes ``{"uid", "before"}`` on ``auth.revoked`` (:meth:`Keys.revocations`),
which every process (this one included, harmlessly: applying is idempotent) applies too. Applying updates the
map and closes this process's gate connections bound with a revoked token (a normal close: PROTOCOL.md
defines no revocation push), and ends their resumable sessions (a later ``session.resume`` answers ``revoked``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

from gameserver.bus.local import Bus
from gameserver.bus.sessions import Sessions
from gameserver.errors import CloseCode, Unauthorized
from gameserver.features.identity.accounts import revocations_since, revoke_tokens, select_revoked_before
from gameserver.features.identity.errors import AccountNotFound
from gameserver.features.identity.tokens import LEEWAY, Claims, Tokens
from gameserver.keys import Keys
from gameserver.storage.errors import is_unavailable
from gameserver.storage.sql import Sql

log = logging.getLogger("gameserver.features.identity")

LOAD_RETRY = 5.0  # seconds between attempts to load the revocations while the database is unreachable
SUBSCRIBE_TIMEOUT = 2.0  # seconds to wait for Redis to confirm the auth.revoked subscription at start-up
REVOKED_REASON = "session revoked"


def now_ms() -> int:
    return int(time.time() * 1000)


class Revocations:
    """This process's view of the revoked tokens, and the way to revoke them everywhere.

    Args:
        tokens: verifies the tokens' signatures and claims.
        db: where ``accounts.tokens_valid_after`` lives.
        sessions: this process's bound gate connections (those of a revoked player are closed).
        bus: carries revocations to the other processes.
        keys: the channel name.
    """

    def __init__(self, tokens: Tokens, *, db: Sql, sessions: Sessions, bus: Bus, keys: Keys) -> None:
        self.tokens = tokens
        self.db = db
        self.sessions = sessions
        self.bus = bus
        self.channel = keys.revocations()
        self.revoked: dict[int, int] = {}  # uid -> tokens_valid_after, roughly oldest first (see _learn)
        self.loaded = asyncio.Event()
        self._loader: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[int], None]] = []

    @property
    def horizon_ms(self) -> int:
        """How long a revocation matters: after it, every token it revoked has expired."""
        return int((self.tokens.ttl + LEEWAY) * 1000) + 60_000

    # Checks -------------------------------------------------------------------------------------------------

    def authenticate(self, token: str) -> Claims:
        """The token's claims, checked against the signature, expiry and the revocations known here (no I/O).

        Raises:
            Unauthorized: the token is invalid, expired or revoked.
        """
        claims = self.tokens.claims(token)
        if not self.allows(claims):
            raise Unauthorized("token revoked")
        return claims

    def allows(self, claims: Claims) -> bool:
        """Whether no revocation known here covers the token. Check it in the same step as binding a connection
        (no ``await`` between): a revocation applied later then finds the binding and closes it."""
        return self.allows_issued(claims.uid, claims.issued_ms)

    def allows_issued(self, uid: int, issued_ms: int) -> bool:
        """Whether something of ``uid``'s issued at ``issued_ms`` (a token, a chat nonce) outlives the revocations
        known here."""
        return issued_ms > self.revoked.get(uid, -1)

    def check(self, claims: Claims, valid_after: int | None) -> None:
        """Check ``claims`` against the account's ``tokens_valid_after`` just read from SQL.

        A revocation newer than the one known here (its bus message was lost: Redis was down) is applied here.

        Raises:
            Unauthorized: the token is revoked.
        """
        if valid_after is None:
            return
        if valid_after > self.revoked.get(claims.uid, -1):
            self.apply(claims.uid, valid_after)
        if claims.issued_ms <= valid_after:
            raise Unauthorized("token revoked")

    async def confirm(self, claims: Claims) -> None:
        """:meth:`check` with the account's value read from SQL.

        Raises:
            Unauthorized: the token is revoked.
        """
        valid_after = await self.db.fetch_value(select_revoked_before(claims.uid))
        self.check(claims, None if valid_after is None else int(valid_after))

    # Revoking -----------------------------------------------------------------------------------------------

    async def revoke(self, uid: int) -> int:
        """Revoke every token of ``uid`` issued up to now, on every process; returns the revocation time (ms).

        Raises:
            AccountNotFound: there is no such account.
        """
        async with self.db.transaction() as tx:
            before = await revoke_tokens(tx, uid, now_ms())
        if before is None:
            raise AccountNotFound()
        self.apply(uid, before)
        self.bus.publish(self.channel, json.dumps({"uid": uid, "before": before}).encode())
        log.info("tokens of uid %d issued up to %d revoked", uid, before)
        return before

    def apply(self, uid: int, before: int) -> None:
        """In this process: refuse ``uid``'s tokens issued at or before ``before``, and close the gate connections
        bound with one (and unbind them in the same step, so that nothing more is done as the player on them). A
        revocation new here is also told to the :meth:`on_revoke` listeners."""
        new = before > self.revoked.get(uid, -1)
        self._learn(uid, before)
        for session in self.sessions.of(uid):
            claims = session.claims
            if claims is None or claims.issued_ms <= before:
                session.close(CloseCode.NORMAL, REVOKED_REASON)  # first: a resumable session learns why it ends
                session.unbind()
        if new:
            for listener in self._listeners:
                listener(uid)

    def on_revoke(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(uid)`` when a revocation of ``uid`` reaches this process (the chat edge closes the
        player's chat connections, which it logged in with nonces, not tokens)."""
        self._listeners.append(listener)

    def _received(self, channel: str, payload: bytes) -> None:
        try:
            message = json.loads(payload)
            uid, before = int(message["uid"]), int(message["before"])
        except (ValueError, KeyError, TypeError):
            log.warning("auth: bad revocation on %s: %r", channel, payload[:200])
            return
        self.apply(uid, before)

    def _learn(self, uid: int, before: int) -> None:
        known = self.revoked.pop(uid, None)
        self.revoked[uid] = before if known is None else max(known, before)
        # Reinserted at the end: the dict is in the order revocations were learnt, so the stale ones are in front.
        stale = now_ms() - self.horizon_ms
        while self.revoked:
            oldest, at = next(iter(self.revoked.items()))
            if at > stale:
                break
            del self.revoked[oldest]

    # Start-up -----------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Hear revocations from the other processes, then load the recent ones from SQL (in the background while
        the database is unreachable)."""
        self.bus.subscribe(self.channel, self._received)
        await self.bus.subscribed([self.channel], SUBSCRIBE_TIMEOUT)
        if not await self._load():
            self._loader = asyncio.create_task(self._retry(), name="auth-revocations-load")

    async def stop(self) -> None:
        self.bus.unsubscribe(self.channel, self._received)
        if self._loader is not None:
            self._loader.cancel()

    async def _retry(self) -> None:
        while not await self._load():
            await asyncio.sleep(LOAD_RETRY)

    async def _load(self) -> bool:
        try:
            async with self.db.transaction() as tx:  # once; creates the tables if the database was down at start-up
                found = await revocations_since(tx, now_ms() - self.horizon_ms)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("auth: database unreachable, revoked tokens not loaded yet: %s", exc)
            return False
        for uid, before in sorted(found.items(), key=lambda item: item[1]):
            self.apply(uid, before)
        self.loaded.set()
        log.info("auth: %d recent revocations loaded", len(found))
        return True
