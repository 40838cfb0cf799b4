"""Password hashing: argon2id at OWASP's parameters (19 MiB, 2 iterations, 1 lane) by default.

Hashing is deliberately slow (tens of milliseconds), so it runs in a worker thread (``asyncio.to_thread``)
and one login never stalls the other connections. Verification compares in constant time (argon2-cffi), and
an unknown username is checked against a dummy hash so that it costs the same as a wrong password.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from gameserver.config import AuthConfig

log = logging.getLogger("gameserver.features.identity")


class Passwords:
    """Hashes and verifies passwords with the configured argon2id cost."""

    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._dummy: str | None = None

    @classmethod
    def from_config(cls, config: AuthConfig) -> Passwords:
        return cls(
            memory_kib=config.hash_memory_kib, time_cost=config.hash_time_cost, parallelism=config.hash_parallelism
        )

    async def hash(self, password: str) -> str:
        """The encoded argon2id hash (``$argon2id$v=19$m=...``) with a fresh random salt."""
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, encoded: str | None, password: str) -> bool:
        """Whether ``password`` matches ``encoded``; None (no such account) costs the same and is False."""
        return await asyncio.to_thread(self._verify, encoded, password)

    def needs_rehash(self, encoded: str) -> bool:
        """Whether ``encoded`` was made with other parameters than the configured ones."""
        return self._hasher.check_needs_rehash(encoded)

    def _verify(self, encoded: str | None, password: str) -> bool:
        if encoded is None:
            if self._dummy is None:
                self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
            with contextlib.suppress(VerificationError):
                self._hasher.verify(self._dummy, password)
            return False
        try:
            return self._hasher.verify(encoded, password)
        except VerificationError:
            return False
        except InvalidHashError:
            log.error("an account's password hash is not a valid argon2 hash")
            return False
