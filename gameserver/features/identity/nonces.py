"""Single-use nonces: a logged-in player trades a token for a nonce, the chat edge redeems it on LOGIN.

A nonce is a random key in Redis holding the player's identity (``uid``, ``name``, ``world``, ``family``, and
``issued_ms``, which a later revocation of the player's sessions outdates) with a short TTL. Redeeming uses
GETDEL, one atomic command: of any number of concurrent redeemers, in one process or in several sharing a
Redis, exactly one gets the identity and the rest get None.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from redis.asyncio import Redis

from gameserver.keys import Keys

log = logging.getLogger("gameserver.features.identity")

NONCE_BYTES = 24


async def issue_nonce(redis: Redis, keys: Keys, identity: dict[str, Any], ttl: float) -> str:
    """Store ``identity`` under a fresh nonce for ``ttl`` seconds and return the nonce."""
    nonce = secrets.token_urlsafe(NONCE_BYTES)
    await redis.set(keys.nonce(nonce), json.dumps(identity), px=int(ttl * 1000))
    return nonce


async def redeem_nonce(redis: Redis, keys: Keys, nonce: str) -> dict[str, Any] | None:
    """The identity stored under ``nonce``, deleting it; None if unknown, expired or already redeemed."""
    if not nonce or len(nonce) > 128:
        return None
    raw = await redis.getdel(keys.nonce(nonce))
    if raw is None:
        return None
    try:
        identity = json.loads(raw)
    except ValueError:
        identity = None
    if not isinstance(identity, dict):
        log.error("nonce %s... held no identity object: %.100r", nonce[:6], raw)
        return None
    return identity
