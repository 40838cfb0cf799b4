"""The jobs feature's lifespan (composed in ``gameserver/app.py``), in a process with the ``worker`` role.

It yields the ``jobs`` resource (enqueue) and, with ``jobs.concurrency`` above 0, runs a
:class:`~gameserver.features.jobs.worker.Worker`. The job table is built from the modules' ``JOBS`` before their
``startup()`` runs (which may then enqueue; a bad job stops the start-up, as a bad handler does); the worker
starts taking jobs once every listener accepts, stops taking them when the shutdown begins, and gives those running
until ``server.shutdown_grace`` (counted from the start of the shutdown) before cancelling them, unacknowledged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from redis.asyncio import Redis

from gameserver.config import Config
from gameserver.features.jobs.queue import Jobs
from gameserver.features.jobs.worker import Worker
from gameserver.features.lifespan import Contribution
from gameserver.keys import Keys

log = logging.getLogger("gameserver.features.jobs")

BLOCK_SHARE = 0.5  # of redis.timeout, at most, for a blocking read: it must come back before the socket times out


@dataclass
class JobsFeature(Contribution):
    jobs: Jobs = field(kw_only=True)


@asynccontextmanager
async def lifespan(
    config: Config,
    *,
    redis: Redis,
    keys: Keys,
    in_process: bool,
    injectable: Callable[[], Mapping[str, Any]],
    node: str,
) -> AsyncIterator[JobsFeature]:
    """Args:
    redis: a binary client of its own (envelopes are msgpack); closed with the feature.
    in_process: the store is fakeredis (no blocking reads; jobs live as long as the process).
    injectable: what the jobs' functions can ask for, once every feature has added its resources.
    """
    jobs = Jobs(redis, keys, config.jobs, injectable=injectable)
    worker: Worker | None = None
    stopping_at: float | None = None

    def build(modules: Mapping[str, ModuleType]) -> Callable[[], None]:  # start-up and hot reload
        table = jobs.build(modules)
        return lambda: jobs.replace_table(table)

    async def start() -> None:
        nonlocal worker
        if config.jobs.concurrency == 0:
            if in_process and jobs.table:
                log.warning("jobs.concurrency is 0 on the in-process store: jobs enqueued here will never run")
            return
        block = 0.0 if in_process else min(config.jobs.poll, config.redis.timeout * BLOCK_SHARE)
        worker = jobs.worker = Worker(jobs, injectable(), node=node, config=config.jobs, block=block)
        await worker.start()

    async def drain() -> None:
        nonlocal stopping_at
        stopping_at = time.monotonic()
        if worker is not None:
            worker.stop_taking()

    try:
        yield JobsFeature(resources={"jobs": jobs}, tables=[build], on_ready=[start], on_drain=[drain], jobs=jobs)
    finally:
        if worker is not None:
            started = stopping_at if stopping_at is not None else time.monotonic()
            await worker.stop(config.server.shutdown_grace - (time.monotonic() - started))
        await redis.aclose()
