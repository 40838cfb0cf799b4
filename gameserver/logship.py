"""Log shipping: every process copies its log records into one Redis stream, capped by size, that the operations
console's log page reads (issue 17: logs without a shell).

:class:`LogShipper` is a logging handler: ``emit`` only turns the record into a flat dict and appends it to a bounded
buffer (never blocking the caller, from any thread; past :data:`BUFFER` records the oldest are dropped and
counted), and a task on the event loop writes the buffer with ``XADD ... MAXLEN ~ N`` in one pipeline per batch.
Records of this module's own logger are not shipped, so that a Redis outage cannot feed on itself.

:func:`read` answers the console: the newest records matching the filters, or those after a stream id (following).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from gameserver.config import Config
from gameserver.keys import Keys
from gameserver.logs import FIELDS, CorrelationFilter

log = logging.getLogger("gameserver.logship")

BUFFER = 10_000  # records waiting for Redis; past it the oldest go (and are counted in ``dropped``)
BATCH = 500  # records per pipeline
MAX_MSG = 4000  # characters of a message kept
MAX_EXC = 8000  # characters of a traceback kept (its end: where it failed)
SCAN = 5000  # stream entries a filtered read looks through at most
RETRY = 1.0  # seconds between attempts while Redis is unreachable
STOP_TIMEOUT = 2.0  # seconds a stop waits for the last batch to be written
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class LogShipper(logging.Handler):
    """Ships this process's records (at ``level`` and above) to the stream ``key``, tagged with ``node``.

    Args:
        redis: a client that decodes replies.
        key: the stream (:meth:`Keys.logs`).
        node: this process's node id, on every record.
        max_len: the stream's cap (approximate: Redis trims whole nodes of its radix tree).
    """

    def __init__(self, redis: Redis, key: str, *, node: str, max_len: int, level: int | str = logging.INFO) -> None:
        super().__init__(level)
        self.redis = redis
        self.key = key
        self.node = node
        self.max_len = max_len
        self.buffer: deque[dict[str, str]] = deque(maxlen=BUFFER)
        self.dropped = 0
        self.shipped = 0
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._failing = False
        self.addFilter(CorrelationFilter())

    def start(self) -> None:
        """Start writing (on the running loop) and attach to the root logger."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._task = asyncio.create_task(self._ship(), name="log-shipper")
        logging.getLogger().addHandler(self)

    async def stop(self) -> None:
        """Detach, write what is buffered, stop. The writer is never cancelled inside a Redis call (a pipeline
        cancelled halfway can leave its connection waiting for ever): it is told to stop and finishes its batch,
        within :data:`STOP_TIMEOUT` seconds."""
        logging.getLogger().removeHandler(self)
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await asyncio.wait([self._task], timeout=STOP_TIMEOUT)
            if not self._task.done():
                log.warning("log shipping: %d records not written at shutdown", len(self.buffer))
                self._task.cancel()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == log.name:
            return
        try:
            entry = {
                "ts": f"{record.created:.3f}",
                "node": self.node,
                "level": record.levelname.lower(),
                "logger": record.name,
                "msg": record.getMessage()[:MAX_MSG],
            }
            for name in FIELDS:
                value = getattr(record, name, None)
                if value is not None:
                    entry[name] = str(value)
            if record.exc_info:
                entry["exc"] = logging.Formatter().formatException(record.exc_info)[-MAX_EXC:]
        except Exception:
            self.handleError(record)
            return
        if len(self.buffer) == BUFFER:
            self.dropped += 1
        self.buffer.append(entry)
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def _ship(self) -> None:
        while not self._stopping.is_set():
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._flush()
            except Exception as exc:
                if not self._failing:  # once per outage; this logger's records are not shipped
                    log.warning("log shipping to Redis failed, records are kept in memory meanwhile: %s", exc)
                self._failing = True
                with contextlib.suppress(TimeoutError):  # the store is down: try again with what came meanwhile
                    await asyncio.wait_for(self._stopping.wait(), RETRY)
                self._wake.set()
            else:
                if self._failing:
                    log.info("log shipping to Redis works again (%d records dropped meanwhile)", self.dropped)
                self._failing = False

    async def _flush(self) -> None:
        while self.buffer:
            batch = [self.buffer[i] for i in range(min(BATCH, len(self.buffer)))]
            async with self.redis.pipeline(transaction=False) as pipe:
                for entry in batch:
                    pipe.xadd(self.key, entry, maxlen=self.max_len, approximate=True)  # type: ignore[arg-type]
                await pipe.execute()
            for _ in batch:  # only what was written leaves the buffer (a failure above keeps it)
                self.buffer.popleft()
            self.shipped += len(batch)


@asynccontextmanager
async def shipping(config: Config, *, redis: Redis, keys: Keys, node: str) -> AsyncIterator[LogShipper | None]:
    """Ship this process's records while the block runs (``admin.ship_logs``; None when off)."""
    settings = config.admin
    if not settings.ship_logs:
        yield None
        return
    shipper = LogShipper(
        redis, keys.logs(), node=node, max_len=settings.log_stream_max, level=settings.ship_level.upper()
    )
    shipper.start()
    try:
        yield shipper
    finally:
        await shipper.stop()


@dataclass(frozen=True, slots=True)
class LogFilter:
    """What the console's log page asks for; empty fields match everything."""

    node: str = ""
    level: str = ""  # the lowest level shown
    module: str = ""  # a logger name or its prefix: ``gameserver.features.jobs``, ``modules.mail``
    uid: str = ""  # the record's ``uid`` field, or ``uid=N`` / ``uid N`` in its message
    cid: str = ""  # the correlation id (or its start: ``node-session``)
    text: str = ""  # a piece of the message

    @classmethod
    def of(cls, query: Mapping[str, str]) -> LogFilter:
        level = query.get("level", "").lower()
        if level and level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}")
        uid = query.get("uid", "").strip()
        if uid and not uid.isdigit():
            raise ValueError("uid must be a number")
        return cls(
            node=query.get("node", "").strip(),
            level=level,
            module=query.get("module", "").strip(),
            uid=uid,
            cid=query.get("cid", "").strip(),
            text=query.get("text", ""),
        )

    def matches(self, entry: Mapping[str, str]) -> bool:
        if self.node and entry.get("node") != self.node:
            return False
        if self.level and LEVELS.get(entry.get("level", ""), 0) < LEVELS[self.level]:
            return False
        if self.module:
            logger = entry.get("logger", "")
            if logger != self.module and not logger.startswith(self.module + "."):
                return False
        if self.cid and not entry.get("cid", "").startswith(self.cid):
            return False
        if self.uid and entry.get("uid") != self.uid:
            if not re.search(rf"\buid[= ]{self.uid}\b", entry.get("msg", "")):
                return False
        return not self.text or self.text in entry.get("msg", "")


async def read(
    redis: Redis, key: str, wanted: LogFilter, *, after: str = "", limit: int = 200
) -> tuple[list[dict[str, Any]], str]:
    """Records matching ``wanted``, oldest first, and the stream id to follow from (pass it as ``after`` next).

    Without ``after``: the newest ``limit`` matches among the last :data:`SCAN` records. With it: the matches among
    the (at most :data:`SCAN`) records written after that id, the last ``limit`` of them.
    """
    entries: Any
    if after:
        entries = await redis.xrange(key, min=f"({after}", max="+", count=SCAN)
        last = entries[-1][0] if entries else after
        found = [_shown(entry_id, fields) for entry_id, fields in entries if wanted.matches(fields)]
        return found[-limit:], last
    entries = await redis.xrevrange(key, max="+", min="-", count=SCAN)
    last = entries[0][0] if entries else "0-0"
    found = []
    for entry_id, fields in entries:
        if wanted.matches(fields):
            found.append(_shown(entry_id, fields))
            if len(found) == limit:
                break
    found.reverse()
    return found, last


def _shown(entry_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    return {"id": entry_id, **fields, "ts": float(fields.get("ts", "0"))}
