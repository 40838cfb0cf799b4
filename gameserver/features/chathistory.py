"""Chat history (docs/PROTOCOL.md, "Chat history"): the last ``chat.history`` lines of each channel in Redis.

Each world and family channel has a capped stream (:meth:`Keys.chat_history`); a line posted on any process is
appended there by that process, with its message id and server timestamp in the line itself (``{"id", "uid",
"name", "text", "ts"}``, the same JSON the members receive). Appending is off the hot path: posting queues the
line, and one writer task per process sends what is queued in one pipeline, in posting order. Being in Redis, the
history outlives a restart of the chat process. Without ``redis.url`` (one process, the embedded store) the
history is a bounded deque per channel in this process instead: the same answers, without the in-process Redis's
cost per line (about 100 µs of CPU per XADD, on the chat edge's own loop).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
from collections import deque
from typing import Any

from redis.asyncio import Redis

from gameserver.keys import Keys

log = logging.getLogger("gameserver.features.chatedge")

MAX_QUEUE = 10_000  # lines waiting for the writer; past it (Redis down) the oldest are not kept
BATCH = 0.05  # seconds a line waits for others to share its pipeline to Redis


class ChatHistory:
    """The history of every channel, as this process writes and reads it.

    Args:
        redis: where the streams live.
        keys: their names.
        keep: lines kept per channel (0: none, and nothing is written).
        local: keep the lines in this process (no Redis shared with other processes).
    """

    def __init__(self, redis: Redis, keys: Keys, *, keep: int, local: bool = False) -> None:
        self.redis = redis
        self.keys = keys
        self.keep = keep
        self.local: dict[str, deque[bytes]] | None = {} if local else None
        self._origin = secrets.token_hex(3)
        self._seq = itertools.count(1)
        self._queue: list[tuple[str, bytes]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # nothing queued or being written
        self._idle.set()
        self._writer: asyncio.Task[None] | None = None
        self._failing = False

    def new_id(self, ts: int) -> str:
        """A message id unique across processes: ``<ms>-<process>-<sequence>``."""
        return f"{ts}-{self._origin}-{next(self._seq)}"

    def append(self, channel: str, payload: bytes) -> None:
        """Queue one line's JSON for ``channel``'s history."""
        if not self.keep:
            return
        if self.local is not None:
            kept = self.local.get(channel)
            if kept is None:
                kept = self.local[channel] = deque(maxlen=self.keep)
            kept.append(payload)
            return
        if len(self._queue) >= MAX_QUEUE:
            del self._queue[0]
        self._queue.append((channel, payload))
        self._idle.clear()
        self._wake.set()
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="chat-history")

    async def _write(self) -> None:
        while True:
            await self._wake.wait()
            # Gather what the next moments post into the same pipeline: a pipeline's round trip costs redis-py far
            # more CPU than an entry in it, and at a line every few milliseconds one pipeline per line cost the chat
            # edge ~0.5 us per delivery (bench_chat.py, 1000 members); a line reaches the history BATCH s later.
            await asyncio.sleep(BATCH)
            self._wake.clear()
            batch, self._queue = self._queue, []
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for channel, payload in batch:
                        key = self.keys.chat_history(channel)
                        pipe.xadd(key, {"m": payload}, maxlen=self.keep, approximate=False)
                    await pipe.execute()
            except Exception as exc:
                if not self._failing:  # once per outage, not once per batch
                    log.warning("chat: lines not kept in the history until Redis answers again: %s", exc)
                self._failing = True
            else:
                if self._failing:
                    log.info("chat: the history is kept again")
                self._failing = False
            if not self._queue:
                self._idle.set()

    async def flush(self) -> None:
        """Wait until every line queued so far is written (or failed to be)."""
        await self._idle.wait()

    async def latest(self, channel: str, count: int) -> list[dict[str, Any]]:
        """The last ``count`` lines of ``channel``, oldest first."""
        if count <= 0 or not self.keep:
            return []
        if self.local is not None:
            kept = self.local.get(channel, ())
            return [json.loads(payload) for payload in list(kept)[-count:]]
        entries: Any = await self.redis.xrevrange(self.keys.chat_history(channel), count=min(count, self.keep))
        return [json.loads(fields["m"]) for _, fields in reversed(entries)]

    async def find(self, channel: str, line_id: str) -> dict[str, Any] | None:
        """The kept line ``line_id`` of ``channel`` (for a report), or None if it is no longer kept."""
        for line in await self.latest(channel, self.keep):
            if line.get("id") == line_id:
                return line
        return None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
