"""The jobs feature's set-up (``FEATURES`` in ``gameserver/app.py``).

A process with the ``worker`` role gets the ``jobs`` resource (enqueue) and, with ``jobs.concurrency`` above 0, a
:class:`~gameserver.features.jobs.worker.Worker` that runs them. The job table is built from the modules' ``JOBS``
before
their ``startup()`` runs (which may then enqueue; a bad job stops the start-up, as a bad handler does); the worker
starts taking jobs once every listener accepts, stops taking them when the shutdown begins, and gives those running
until ``server.shutdown_grace`` (counted from the start of the shutdown) before cancelling them, unacknowledged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING

from gameserver.features.jobs.queue import Jobs
from gameserver.features.jobs.worker import Worker

if TYPE_CHECKING:
    from gameserver.app import App

log = logging.getLogger("gameserver.features.jobs")

BLOCK_SHARE = 0.5  # of redis.timeout, at most, for a blocking read: it must come back before the socket times out


async def setup(app: App) -> None:
    if "worker" not in app.roles:
        return
    config = app.config
    resources = app.resources
    redis = resources.open_redis(decode=False)  # envelopes are msgpack: a client that returns bytes
    jobs = Jobs(redis, resources.keys, config.jobs, injectable=lambda: resources.injectable())
    resources.extra["jobs"] = jobs
    worker: Worker | None = None
    stopping_at: float | None = None

    def build(modules: Mapping[str, ModuleType]) -> Callable[[], None]:  # start-up and hot reload
        table = jobs.build(modules)
        return lambda: jobs.replace_table(table)

    async def start() -> None:
        nonlocal worker
        if config.jobs.concurrency == 0:
            if resources.fake_redis_server is not None and jobs.table:
                log.warning("jobs.concurrency is 0 on the in-process store: jobs enqueued here will never run")
            return
        block = (
            0.0
            if resources.fake_redis_server is not None
            else min(config.jobs.poll, config.redis.timeout * BLOCK_SHARE)
        )
        worker = jobs.worker = Worker(jobs, resources.injectable(), node=app.node, config=config.jobs, block=block)
        await worker.start()

    async def drain() -> None:
        nonlocal stopping_at
        stopping_at = time.monotonic()
        if worker is not None:
            worker.stop_taking()

    async def shutdown() -> None:
        if worker is not None:
            started = stopping_at if stopping_at is not None else time.monotonic()
            await worker.stop(config.server.shutdown_grace - (time.monotonic() - started))
        await redis.aclose()

    app.table_hooks.append(build)
    app.ready_hooks.append(start)
    app.drain_hooks.append(drain)
    app.shutdown_hooks.append(shutdown)
