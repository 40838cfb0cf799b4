"""Persisted notifications (docs/PROTOCOL.md, "Persisted notifications"): a push that waits for its player.

``push`` (the bus) delivers only to connections that exist now. The ``notify`` resource is the push that persists:
``await notify(uid, event, data)`` delivers at once when the player is online on any process (presence), and
otherwise keeps it in Redis (a list per player, at most ``notifications.max``, the oldest dropped first, expiring
``notifications.ttl`` seconds after the last one kept), to be pushed, in order, on the player's next bind on any
process. ``data`` must be JSON. Taking the kept list is one transaction (read and delete), so a push kept while the
player was logging in is delivered once, by whichever of the login or the keeper takes it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from redis.asyncio import Redis

from gameserver.bus.local import Bus
from gameserver.bus.sessions import Sessions
from gameserver.features.online import PresenceTracker
from gameserver.keys import Keys

log = logging.getLogger("gameserver.features.notifications")


class Notifications:
    """The ``notify`` resource (call it) and the delivery at login (:meth:`deliver`)."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        bus: Bus,
        sessions: Sessions,
        presence: PresenceTracker,
        *,
        limit: int,
        ttl: float,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.bus = bus
        self.sessions = sessions
        self.presence = presence
        self.limit = limit
        self.ttl_ms = int(ttl * 1000)

    async def __call__(self, uid: int, event: str, data: Any) -> bool:
        """Push ``event`` to ``uid`` now if online anywhere (True), else keep it for their next login (False)."""
        body = json.dumps({"event": event, "data": data})  # raises before anything is sent or kept
        if self.limit == 0 or await self.presence.is_online(uid):
            self.bus.push(uid, event, data)
            return True
        key = self.keys.notifications(uid)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, body)
            pipe.ltrim(key, -self.limit, -1)
            pipe.pexpire(key, self.ttl_ms)
            await pipe.execute()
        if await self.presence.is_online(uid):  # logged in meanwhile: the login may have looked already
            for kept in await self._take(uid):
                self.bus.push(uid, kept["event"], kept["data"])
        return False

    async def pending(self, uid: int) -> list[dict[str, Any]]:
        """What is kept for ``uid``, oldest first (for operators and tests)."""
        return [json.loads(raw) for raw in await self.redis.lrange(self.keys.notifications(uid), 0, -1)]

    async def deliver(self, uid: int) -> None:
        """``uid`` came online here: push what was kept to their connections in this process."""
        kept = await self._take(uid)
        for item in kept:
            self.sessions.push(uid, item["event"], item["data"])
        if kept:
            log.info("notifications: %d kept pushes delivered to uid %d", len(kept), uid)

    async def _take(self, uid: int) -> list[dict[str, Any]]:
        key = self.keys.notifications(uid)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrange(key, 0, -1)
            pipe.delete(key)
            raws, _ = await pipe.execute()
        return [json.loads(raw) for raw in raws]
