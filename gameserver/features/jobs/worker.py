"""The job worker of a process with the ``worker`` role: ``jobs.concurrency`` jobs at a time.

Every worker is a consumer of one consumer group (:data:`GROUP`) on the stream ``jobs.ready``, under a name of
its own (node id and a random suffix). A run ends in one MULTI that acknowledges and deletes the stream entry
and, for a failure, either puts the next try in the delayed set (exponential backoff) or appends the job with its
error to the dead-letter stream ``jobs.dead``. An entry that is read and never acknowledged (the process was
killed, or stopped with the job still running) stays in the group's pending list; once nobody has touched it for
``jobs.reclaim_after`` seconds another worker takes it over (XAUTOCLAIM) and runs it again as its next try. So
that a long job is not taken from a live worker, each worker touches its running entries (XCLAIM to itself) every
third of that time. Delivery is therefore at least once: a job must be idempotent.

Three loops: *fetch* reads as many entries as there are free slots (blocking in XREADGROUP on a real Redis; the
in-process store cannot block, so there it waits for a local enqueue or ``jobs.poll``); *maintain* moves due
delayed jobs to the stream, touches the running entries, reclaims abandoned ones and counts the queue for
``/metrics``; *periodic* enqueues each ``every()`` job when its period starts, once across all processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
import traceback
from collections.abc import Mapping
from typing import Any

from redis.exceptions import RedisError, ResponseError

from gameserver import metrics
from gameserver.config import JobsConfig
from gameserver.dispatch.registry import injected
from gameserver.features.jobs.envelope import Envelope, backoff, decode
from gameserver.features.jobs.queue import FIELD, Jobs
from gameserver.features.jobs.spec import PER_RUN, JobEntry, Retry
from gameserver.logs import CORRELATION_ID
from gameserver.storage.pending import TOUCH
from gameserver.tasks import cancel_and_wait

log = logging.getLogger("gameserver.features.jobs")

GROUP = "workers"
TOUCH_SHARE = 1 / 3  # of jobs.reclaim_after: how often a worker touches the entries it runs
CONSUMER_MAX_IDLE = 3600.0  # seconds after which an idle consumer owning nothing is removed from the group
CLEANUP_EVERY = 100  # maintenance rounds between those removals
TROUBLE_LOG_EVERY = 30.0  # seconds between warnings while the store is unreachable
MAX_ERROR = 8000  # characters of a traceback kept in a dead letter


class Worker:
    """Runs the jobs of :class:`Jobs` ``jobs`` with the resources ``resources``.

    Args:
        jobs: the queue and its current table (hot reload swaps the table; runs under way keep their entry).
        resources: what jobs can be injected (``resources.injectable()``).
        node: this process's id, the start of the consumer name.
        config: the ``[jobs]`` settings.
        block: seconds to block in XREADGROUP; 0 for a store that cannot block (the in-process one).
    """

    def __init__(
        self, jobs: Jobs, resources: Mapping[str, Any], *, node: str, config: JobsConfig, block: float
    ) -> None:
        self.jobs = jobs
        self.redis = jobs.redis
        self.keys = jobs.keys
        self.resources = dict(resources)
        self.config = config
        self.block = block
        self.consumer = f"{node}-{secrets.token_hex(4)}"
        self.running: dict[bytes, asyncio.Task[None]] = {}
        self.taking = False
        self._closed = False
        self._freed = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._shared: dict[str, tuple[JobEntry, dict[str, Any]]] = {}
        self._touch = self.redis.register_script(TOUCH)
        self._trouble_since: float | None = None
        self._trouble_logged = 0.0

    # -- lifecycle

    async def start(self) -> None:
        """Start taking jobs. The store may be down: the loops keep trying."""
        self.taking = True
        with contextlib.suppress(RedisError, OSError):
            await self._ensure_group()
        self._loops = [
            asyncio.create_task(self._fetch_loop(), name="jobs-fetch"),
            asyncio.create_task(self._maintain_loop(), name="jobs-maintain"),
            asyncio.create_task(self._periodic_loop(), name="jobs-periodic"),
        ]  # stop_taking() cancels the first and the last
        log.info("jobs: worker %s takes %d at a time", self.consumer, self.config.concurrency)

    def stop_taking(self) -> None:
        """Take no new job; those running go on, still touched (graceful shutdown, first step). A read that was
        under way is abandoned: what it may have been handed stays pending, for another worker to reclaim."""
        self.taking = False
        self._freed.set()
        self.jobs.ready.set()
        for loop in self._loops[::2]:  # fetch and periodic; maintenance goes on touching the running entries
            loop.cancel()

    async def stop(self, timeout: float) -> None:
        """Let the running jobs finish for at most ``timeout`` seconds, then cancel the rest: their entries stay
        unacknowledged in the stream, for another worker to reclaim after ``jobs.reclaim_after``."""
        self.stop_taking()
        running = list(self.running.values())
        if running:
            done, pending = await asyncio.wait(running, timeout=max(0.0, timeout))
            if pending:
                log.warning("jobs: %d still running at shutdown; left for another worker to reclaim", len(pending))
                await cancel_and_wait(pending)
        self._closed = True
        self.jobs.delayed.set()
        await cancel_and_wait(self._loops)
        with contextlib.suppress(RedisError, OSError):
            mine = await self.redis.xpending_range(
                self.keys.jobs_stream(), GROUP, min="-", max="+", count=1, consumername=self.consumer
            )
            if not mine:  # a consumer's pending entries go with it: remove only one that owns none
                await self.redis.xgroup_delconsumer(self.keys.jobs_stream(), GROUP, self.consumer)

    # -- fetch

    async def _fetch_loop(self) -> None:
        stream = self.keys.jobs_stream()
        while self.taking:
            free = self.config.concurrency - len(self.running)
            if free <= 0:
                self._freed.clear()
                await self._freed.wait()
                continue
            self.jobs.ready.clear()
            try:
                reply: Any = await self.redis.xreadgroup(
                    GROUP, self.consumer, {stream: ">"}, count=free, block=int(self.block * 1000) or None
                )
            except Exception as exc:
                await self._trouble(exc)
                continue
            self._fine()
            if not self.taking:  # stopped during the read (a cancel can be lost): leave what came for reclaiming
                break
            entries: list[tuple[bytes, dict[bytes, bytes] | None]] = [
                entry for _, stream_entries in reply or () for entry in stream_entries
            ]
            for entry_id, fields in entries:
                self._start(entry_id, fields, deliveries=1)
            if not entries and not self.block:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.config.poll):
                        await self.jobs.ready.wait()

    def _start(self, entry_id: bytes, fields: Mapping[bytes, bytes] | None, deliveries: int) -> None:
        data = (fields or {}).get(FIELD, b"")
        task = asyncio.create_task(self._run(entry_id, data, deliveries), name=f"job-{entry_id.decode()}")
        self.running[entry_id] = task
        task.add_done_callback(lambda _: self._finished(entry_id))

    def _finished(self, entry_id: bytes) -> None:
        self.running.pop(entry_id, None)
        self._freed.set()

    # -- one run

    async def _run(self, entry_id: bytes, data: bytes, deliveries: int) -> None:
        try:
            envelope = decode(data)
        except ValueError as exc:
            log.error(
                "jobs: entry %s of %s is not a job (%s); moved to the dead letters",
                entry_id,
                self.keys.jobs_stream(),
                exc,
            )
            await self._finish(entry_id, dead=(data, f"not a job: {exc}"), job_name="(undecodable)")
            return
        CORRELATION_ID.set(f"job-{envelope.id}")
        job = self.jobs.table.get(envelope.name)
        max_tries = job.max_tries if job is not None else self.config.max_tries
        try_ = envelope.try_ + deliveries - 1  # a reclaimed entry: its worker stopped before finishing a try
        if try_ > max_tries:
            why = f"its worker stopped before finishing it (delivery {deliveries}); no tries left of {max_tries}"
            log.error("job %s (id %s): %s; moved to the dead letters", envelope.name, envelope.id, why)
            metrics.JOB_RUNS.labels(envelope.name, "failed").inc()
            await self._bury(entry_id, envelope, try_, why)
            return
        deadline = asyncio.timeout(job.timeout if job is not None else None)
        started = time.perf_counter()
        try:
            if job is None:
                raise LookupError(f"no job {envelope.name} in this process (removed, or not deployed here yet)")
            job.entry.check_args(envelope.args)
            kwargs = self._kwargs(job, envelope, try_)
            async with deadline:
                await job.entry.fn(**envelope.args, **kwargs)
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # shutdown: the entry stays unacknowledged, for another worker to reclaim
            await self._failed(entry_id, envelope, try_, job, exc)  # a cancel that escaped from inside the job
        except TimeoutError as exc:
            error: BaseException = exc
            if deadline.expired() and job is not None:
                error = TimeoutError(f"timed out after {job.timeout:g}s")
            await self._failed(entry_id, envelope, try_, job, error)
        except Retry as exc:
            await self._failed(entry_id, envelope, try_, job, exc, delay=exc.delay)
        except Exception as exc:
            await self._failed(entry_id, envelope, try_, job, exc)
        else:
            metrics.JOB_RUNS.labels(envelope.name, "ok").inc()
            log.debug(
                "job %s (id %s) done in %.3fs, try %d", envelope.name, envelope.id, time.perf_counter() - started, try_
            )
            await self._finish(entry_id, job_name=envelope.name)

    def _kwargs(self, job: JobEntry, envelope: Envelope, try_: int) -> dict[str, Any]:
        entry = job.entry
        cached = self._shared.get(job.name)
        if cached is None or cached[0] is not job:  # first run, or the table was replaced (hot reload)
            cached = self._shared[job.name] = (job, injected(entry, self.resources, PER_RUN))
        kwargs = cached[1].copy()
        values = {"job_id": envelope.id, "job_try": try_, "scheduled_at": envelope.due / 1000}
        for name, value in values.items():
            if entry.inject is None or name in entry.inject:
                kwargs[name] = value
        return kwargs

    async def _failed(
        self,
        entry_id: bytes,
        envelope: Envelope,
        try_: int,
        job: JobEntry | None,
        exc: BaseException,
        delay: float | None = None,
    ) -> None:
        metrics.JOB_RUNS.labels(envelope.name, "failed").inc()
        max_tries = job.max_tries if job is not None else self.config.max_tries
        if try_ < max_tries:
            if delay is None:
                base = job.backoff if job is not None else self.config.backoff
                delay = backoff(base, try_, self.config.max_backoff)
            log.warning(
                "job %s (id %s) failed on try %d of %d; retrying in %.3gs",
                envelope.name,
                envelope.id,
                try_,
                max_tries,
                delay,
                exc_info=exc,
            )
            due = math.ceil((time.time() + delay) * 1000)  # whole ms, never early
            retry = Envelope(envelope.id, envelope.name, envelope.args, try_ + 1, due)
            if await self._finish(entry_id, retry=retry, job_name=envelope.name):
                metrics.JOB_RETRIES.labels(envelope.name).inc()
                self.jobs.delayed.set()
            return
        log.error(
            "job %s (id %s) failed on its last try (%d of %d); moved to the dead letters",
            envelope.name,
            envelope.id,
            try_,
            max_tries,
            exc_info=exc,
        )
        error = "".join(traceback.format_exception(exc))[-MAX_ERROR:]
        await self._bury(entry_id, envelope, try_, error)

    async def _bury(self, entry_id: bytes, envelope: Envelope, try_: int, error: str) -> None:
        last = Envelope(envelope.id, envelope.name, envelope.args, try_, envelope.due)
        await self._finish(entry_id, dead=(last.encode(), error), job_name=envelope.name)

    async def _finish(
        self,
        entry_id: bytes,
        *,
        job_name: str,
        retry: Envelope | None = None,
        dead: tuple[bytes, str] | None = None,
    ) -> bool:
        """Acknowledge and delete the entry, with its retry or dead letter, in one transaction. If the store is
        unreachable the entry stays pending and is reclaimed (and run again) later: at least once."""
        stream = self.keys.jobs_stream()
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                if retry is not None:
                    pipe.zadd(self.keys.jobs_delayed(), {retry.encode(): retry.due})
                if dead is not None:
                    fields: dict[Any, Any] = {
                        FIELD: dead[0],
                        b"error": dead[1],
                        b"failed_at": int(time.time() * 1000),
                    }
                    pipe.xadd(self.keys.jobs_dead(), fields, maxlen=self.config.dead_max, approximate=True)
                pipe.xack(stream, GROUP, entry_id)
                pipe.xdel(stream, entry_id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("jobs: cannot record the end of %s (entry %s): %s; it will run again", job_name, entry_id, exc)
            return False
        if dead is not None:
            metrics.JOB_DEAD.labels(job_name).inc()
        return True

    # -- maintenance: due jobs, touching, reclaiming, counting

    async def _maintain_loop(self) -> None:
        touch_every = self.config.reclaim_after * TOUCH_SHARE
        last_touch = time.monotonic()
        rounds = 0
        while not self._closed:  # touching goes on while running jobs finish
            self.jobs.delayed.clear()
            wait = self.config.poll
            try:
                await self.jobs.promote()
                next_due = await self.jobs.next_due()
                if next_due is not None:
                    wait = min(wait, max(0.0, next_due - time.time()))
                if time.monotonic() - last_touch >= touch_every:
                    await self._touch_running()
                    last_touch = time.monotonic()
                await self._reclaim()
                counts = await self.jobs.counts()
                for state, count in counts.items():
                    metrics.JOB_QUEUE.labels(state).set(count)
                rounds += 1
                if rounds % CLEANUP_EVERY == 0:
                    await self._remove_idle_consumers()
            except Exception as exc:
                await self._trouble(exc)
                continue
            wait = min(wait, max(0.0, last_touch + touch_every - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self.jobs.delayed.wait()

    async def _touch_running(self) -> None:
        if self.running:
            await self._touch(keys=[self.keys.jobs_stream(), self.consumer], args=[GROUP, *self.running])

    async def _reclaim(self) -> None:
        """Take over entries that nobody has touched for ``jobs.reclaim_after`` (their worker is gone)."""
        free = self.config.concurrency - len(self.running)
        if free <= 0 or not self.taking:
            return
        stream = self.keys.jobs_stream()
        reply = await self.redis.xautoclaim(
            stream,
            GROUP,
            self.consumer,
            min_idle_time=int(self.config.reclaim_after * 1000),
            start_id="0-0",
            count=free,
        )
        for entry_id, fields in reply[1]:
            if fields is None:  # deleted from the stream while pending (Redis 6.2 still lists it)
                await self.redis.xack(stream, GROUP, entry_id)
                continue
            pending = await self.redis.xpending_range(stream, GROUP, min=entry_id, max=entry_id, count=1)
            deliveries = int(pending[0]["times_delivered"]) if pending else 2
            log.warning(
                "jobs: reclaimed entry %s after %gs untouched (delivery %d)",
                entry_id,
                self.config.reclaim_after,
                deliveries,
            )
            self._start(entry_id, fields, deliveries=deliveries)

    async def _remove_idle_consumers(self) -> None:
        """Consumers of processes that were killed stay in the group: remove those that own nothing any more."""
        stream = self.keys.jobs_stream()
        for consumer in await self.redis.xinfo_consumers(stream, GROUP):
            name = consumer["name"].decode() if isinstance(consumer["name"], bytes) else consumer["name"]
            if name != self.consumer and not consumer["pending"] and consumer["idle"] > CONSUMER_MAX_IDLE * 1000:
                await self.redis.xgroup_delconsumer(stream, GROUP, name)

    # -- periodic jobs

    async def _periodic_loop(self) -> None:
        seen: dict[str, int] = {}  # job name -> the last period this process looked at
        while self.taking:
            now = time.time()
            wake = now + self.config.poll  # a hot reload may bring new periodic jobs
            table = self.jobs.table
            for name, job in table.items():
                if job.every is None:
                    continue
                period = job.period(now)
                last = seen.get(name)
                seen[name] = period
                if last is not None and period > last:  # a period under way at start-up was not ours to start
                    await self._enqueue_period(job, period)
                wake = min(wake, job.period_start(period + 1))
            for name in list(seen):
                if name not in table:
                    del seen[name]
            await asyncio.sleep(max(0.0, wake - time.time()))

    async def _enqueue_period(self, job: JobEntry, period: int) -> None:
        try:
            job_id = await self.jobs.enqueue_period(job, period)
        except (RedisError, OSError) as exc:
            log.warning("jobs: cannot enqueue periodic %s for period %d: %s", job.name, period, exc)
            return
        if job_id is not None:
            log.info(
                "jobs: enqueued periodic %s (id %s) for the period from %.3f",
                job.name,
                job_id,
                job.period_start(period),
            )

    # -- the store

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.jobs_stream(), GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _trouble(self, exc: Exception) -> None:
        """A loop's step failed: the store is unreachable (warn at most every 30 s), the stream and its group are
        gone (a flushed or restarted store: make them again), or a bug (log it). Then wait a poll period."""
        if isinstance(exc, ResponseError) and "NOGROUP" in str(exc):
            with contextlib.suppress(RedisError, OSError):
                await self._ensure_group()
            return
        if not isinstance(exc, (RedisError, OSError)):
            log.error("jobs: worker step failed", exc_info=exc)
            await asyncio.sleep(self.config.poll)
            return
        now = time.monotonic()
        if self._trouble_since is None:
            self._trouble_since = now
        if now - self._trouble_logged >= TROUBLE_LOG_EVERY:
            self._trouble_logged = now
            log.warning(
                "jobs: the store is unreachable (%s: %s); retrying every %gs", type(exc).__name__, exc, self.config.poll
            )
        await asyncio.sleep(self.config.poll)

    def _fine(self) -> None:
        if self._trouble_since is not None:
            log.info("jobs: the store answers again after %.1fs", time.monotonic() - self._trouble_since)
            self._trouble_since = None
            self._trouble_logged = 0.0
