"""Presence: who is online, on any process, and since when they are gone (docs/PROTOCOL.md, "Presence").

A process holding gate connections bound to a player claims them online in Redis: a member (its random origin)
of the sorted set ``presence.<uid>`` scored by when the claim lapses (ms), refreshed every ``presence.ttl / 3``
seconds, and the same ``<uid> <origin>`` in one index sorted set. The player is online while any claim is
current, so a process that is SIGKILLed leaves no ghost: its claims lapse within ``presence.ttl``, and the next
refresh of any surviving process sweeps them from the index, records the last-seen time and announces the player
offline. The player's first bind in the process and its last unbind or close claim and withdraw at once.

A change is pushed as ``presence.changed`` ``{"uid", "online", "last_seen"}`` to every player watching (a Redis
set per watched player, filled by ``presence.subscribe``), through the bus, so on every process.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from gameserver.bus.local import Bus
from gameserver.bus.sessions import Sessions
from gameserver.config import NotificationsConfig, PresenceConfig
from gameserver.features.lifespan import Contribution
from gameserver.keys import Keys

if TYPE_CHECKING:
    from gameserver.features.notifications import Notifications

log = logging.getLogger("gameserver.features.online")

WATCH_TTL = 86400  # seconds a watch lives unless renewed by presence.subscribe
SWEEP_BATCH = 100  # lapsed claims swept per refresh
STOP_TIMEOUT = 0.5  # seconds a clean stop waits for its claims to be withdrawn (else they lapse within the ttl)

Push = Callable[[int, str, Any], None]

# KEYS: claims, index, last_seen; ARGV: now, lapses, member, index member. Returns the claims before this one.
_CLAIM = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local before = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2] - ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
return before
"""

# KEYS: claims, index, last_seen; ARGV: now, member, index member, seen. Returns the claims left, or -1 when the
# claim was not in the index (someone else withdrew or swept it). The index decides, not the player's set: that
# one expires with its last claim, before a sweep may come.
_WITHDRAW = """
local removed = redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if removed == 0 then return -1 end
local left = redis.call('ZCARD', KEYS[1])
if left == 0 then redis.call('SET', KEYS[3], ARGV[4]) end
return left
"""


def now_ms() -> int:
    return int(time.time() * 1000)


class PresenceTracker:
    """This process's claims, and the ``presence`` resource handlers use.

    Args:
        redis: where the claims live.
        keys: their names.
        push: the bus's push (to every process), for ``presence.changed``.
        ttl: seconds a claim lives without a refresh.
    """

    def __init__(self, redis: Redis, keys: Keys, push: Push, *, ttl: float) -> None:
        self.redis = redis
        self.keys = keys
        self.push = push
        self.ttl_ms = int(ttl * 1000)
        self.origin = secrets.token_hex(8)
        self.held: set[int] = set()
        self.on_online: list[Callable[[int], Any]] = []  # awaited after the claim (persisted notifications)
        self._changes: asyncio.Queue[tuple[int, bool]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._claim = redis.register_script(_CLAIM)
        self._withdraw = redis.register_script(_WITHDRAW)

    # Told by Sessions (in order, so a quick unbind and bind keep their order) --------------------------

    def online(self, uid: int) -> None:
        self.held.add(uid)
        self._changes.put_nowait((uid, True))

    def offline(self, uid: int) -> None:
        self.held.discard(uid)
        self._changes.put_nowait((uid, False))

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._apply(), name="presence-changes"),
            asyncio.create_task(self._refresh(), name="presence-refresh"),
        ]

    async def stop(self) -> None:
        """Withdraw every claim of this process (a clean stop), then stop."""
        for uid in tuple(self.held):
            self.offline(uid)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await self._changes.join()
        except Exception as exc:  # TimeoutError included
            log.warning("presence: claims not withdrawn at shutdown (they lapse in %gs): %r", self.ttl_ms / 1000, exc)
        for task in self._tasks:
            task.cancel()

    async def _apply(self) -> None:
        while True:
            uid, online = await self._changes.get()
            try:
                if online:
                    await self._claim_one(uid)
                else:
                    await self._withdraw_one(uid, self.origin, now_ms())
            except Exception as exc:  # Redis down: the refresh claims again; a withdrawal lapses
                log.warning("presence: uid %d %s not recorded: %s", uid, "online" if online else "offline", exc)
            finally:
                self._changes.task_done()

    async def _claim_one(self, uid: int) -> None:
        now = now_ms()
        keys = [self.keys.presence(uid), self.keys.presence_index(), self.keys.last_seen(uid)]
        before = await self._claim(keys=keys, args=[now, now + self.ttl_ms, self.origin, f"{uid} {self.origin}"])
        if int(before) == 0:
            await self._announce(uid, True, now)
        for listener in self.on_online:
            await listener(uid)

    async def _withdraw_one(self, uid: int, origin: str, seen: int) -> None:
        if uid in self.held and origin == self.origin:
            return  # bound again meanwhile
        keys = [self.keys.presence(uid), self.keys.presence_index(), self.keys.last_seen(uid)]
        left = await self._withdraw(keys=keys, args=[now_ms(), origin, f"{uid} {origin}", seen])
        if int(left) == 0:
            await self._announce(uid, False, seen)

    async def _refresh(self) -> None:
        period = self.ttl_ms / 3000
        while True:
            await asyncio.sleep(period)
            try:
                await self.refresh()
            except Exception as exc:
                log.warning("presence: refresh failed: %s", exc)

    async def refresh(self) -> None:
        """Renew this process's claims, and sweep the lapsed claims of dead processes."""
        now = now_ms()
        lapses = now + self.ttl_ms
        index = self.keys.presence_index()
        held = tuple(self.held)
        if held:
            async with self.redis.pipeline(transaction=False) as pipe:
                for uid in held:
                    pipe.zadd(self.keys.presence(uid), {self.origin: lapses})
                    pipe.pexpire(self.keys.presence(uid), self.ttl_ms)
                    pipe.zadd(index, {f"{uid} {self.origin}": lapses})
                answers = await pipe.execute()
            for uid, added in zip(held, answers[::3], strict=True):
                if added:  # this process stalled past the ttl and another swept its claim: online again
                    await self._announce(uid, True, now)
        lapsed: list[Any] = await self.redis.zrangebyscore(
            index, "-inf", now, start=0, num=SWEEP_BATCH, withscores=True
        )
        for member, score in lapsed:
            uid_text, _, origin = str(member).partition(" ")
            await self._withdraw_one(int(uid_text), origin, int(score) - self.ttl_ms)

    async def _announce(self, uid: int, online: bool, at: int) -> None:
        watchers = await self.redis.smembers(self.keys.presence_watchers(uid))
        event = {"uid": uid, "online": online, "last_seen": at}
        for watcher in watchers:
            self.push(int(watcher), "presence.changed", event)

    # The resource ---------------------------------------------------------------------------------------

    async def get(self, uids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """``{uid: {"online", "last_seen"}}``: last_seen is now for an online player, None if never seen."""
        uids = list(dict.fromkeys(uids))
        now = now_ms()
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid in uids:
                pipe.zcount(self.keys.presence(uid), now + 1, "+inf")
                pipe.get(self.keys.last_seen(uid))
            answers = await pipe.execute()
        found = {}
        for index, uid in enumerate(uids):
            count, seen = answers[2 * index], answers[2 * index + 1]
            online = int(count) > 0
            found[uid] = {"online": online, "last_seen": now if online else (None if seen is None else int(seen))}
        return found

    async def is_online(self, uid: int) -> bool:
        return bool(await self.redis.zcount(self.keys.presence(uid), now_ms() + 1, "+inf"))

    async def watch(self, watcher: int, uids: Iterable[int]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid in uids:
                pipe.sadd(self.keys.presence_watchers(uid), watcher)
                pipe.expire(self.keys.presence_watchers(uid), WATCH_TTL)
            await pipe.execute()

    async def unwatch(self, watcher: int, uids: Iterable[int]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for uid in uids:
                pipe.srem(self.keys.presence_watchers(uid), watcher)
            await pipe.execute()


@dataclass
class PresenceFeature(Contribution):
    presence: PresenceTracker = field(kw_only=True)
    notify: Notifications = field(kw_only=True)


@asynccontextmanager
async def lifespan(
    presence: PresenceConfig,
    notifications: NotificationsConfig,
    *,
    redis: Redis,
    keys: Keys,
    bus: Bus,
    sessions: Sessions,
) -> AsyncIterator[PresenceFeature]:
    """Every process tracks the players bound to it and serves the ``presence`` and ``notify`` resources."""
    from gameserver.features.notifications import Notifications

    tracker = PresenceTracker(redis, keys, bus.push, ttl=presence.ttl)
    notify = Notifications(redis, keys, bus, sessions, tracker, limit=notifications.max, ttl=notifications.ttl)
    tracker.on_online.append(notify.deliver)
    sessions.watchers.append(tracker)

    async def start() -> None:
        tracker.start()

    try:
        yield PresenceFeature(
            resources={"presence": tracker, "notify": notify}, on_listen=[start], presence=tracker, notify=notify
        )
    finally:
        await tracker.stop()
        sessions.watchers.remove(tracker)
