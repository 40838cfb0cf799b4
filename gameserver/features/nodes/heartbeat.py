"""A process's entry in the node registry, kept fresh from its listeners' first accept until its drain.

The first heartbeat runs as start-up ends (the feature's ``on_ready``), so that a started app is listed; then one every
``nodes.heartbeat`` seconds, each live for ``nodes.ttl``. A Redis that is down or hangs costs a warning when it
goes and a line when it is back (the entry is then written again whole): never a crash or a line per beat. On a
graceful stop the entry goes first (its ``on_drain``), before the listeners stop accepting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from gameserver.features.nodes.record import NodeRecord
from gameserver.features.nodes.store import NodeStore

log = logging.getLogger("gameserver.features.nodes")

LEAVE_TIMEOUT = 1.0  # seconds a graceful stop waits for Redis to take the entry away; then it expires by itself
LEAVE_SHARE = 0.25  # ... and at most this share of server.shutdown_grace, which the requests in flight need more


class Heartbeat:
    """Writes ``snapshot()`` to ``store`` every ``interval`` seconds, live for ``ttl`` seconds.

    Args:
        store: the registry.
        snapshot: the process's entry as of now (load included); called once per beat.
        interval: seconds between beats.
        ttl: seconds an entry outlives its last beat.
        leave_timeout: seconds :meth:`stop` waits for Redis to remove the entry.
    """

    def __init__(
        self,
        store: NodeStore,
        snapshot: Callable[[], NodeRecord],
        *,
        interval: float,
        ttl: float,
        leave_timeout: float = LEAVE_TIMEOUT,
    ) -> None:
        self.store = store
        self.snapshot = snapshot
        self.interval = interval
        self.ttl = ttl
        self.leave_timeout = leave_timeout
        self.beats = 0  # successful ones
        self.failures = 0
        self.failing = False
        self._warned_twin = False
        self.task: asyncio.Task[None] | None = None
        self._record: NodeRecord | None = None

    async def start(self) -> None:
        """The first beat (at most ``interval`` seconds), then the loop in a task."""
        try:
            async with asyncio.timeout(self.interval):
                await self.beat()
        except TimeoutError:
            self.failures += 1
            self._down(TimeoutError(f"no answer within {self.interval:g}s"))
        record = self._record
        name = f"node-heartbeat-{record.node}" if record is not None else "node-heartbeat"
        self.task = asyncio.create_task(self._run(), name=name)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.beat()

    async def beat(self) -> bool:
        """One heartbeat; False if Redis could not take it (logged once until it can again)."""
        record = self._record = self.snapshot()
        try:
            result = await self.store.beat(record, self.ttl)
        except Exception as exc:  # Redis down or hung, or anything else: keep the process, try at the next beat
            self.failures += 1
            self._down(exc)
            return False
        if self.failing:
            self.failing = False
            log.info("node registry: Redis reachable again; node %s registered again", record.node)
        if result.previous not in (None, record.instance) and self.beats and not self._warned_twin:
            self._warned_twin = True  # the first beat may replace the entry of this node's previous run: no warning
            log.warning(
                "node registry: another process writes the entry of node %s too (server.node_id must be unique); "
                "the front sees whichever wrote last",
                record.node,
            )
        self.beats += 1
        return True

    def _down(self, exc: BaseException) -> None:
        if not self.failing:
            self.failing = True
            log.warning(
                "node registry: cannot write this node's entry (%s: %s); retrying every %gs",
                type(exc).__name__,
                exc,
                self.interval,
            )

    async def stop(self) -> None:
        """Stop beating and take the entry away (within ``leave_timeout``; else it expires after ``ttl``)."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
        record = self._record
        if record is None:
            return
        try:
            async with asyncio.timeout(self.leave_timeout):
                await self.store.leave(record.node, record.instance)
        except Exception as exc:
            log.warning("node registry: could not remove node %s (%s); it expires in %gs", record.node, exc, self.ttl)
        else:
            log.info("node registry: node %s removed", record.node)
