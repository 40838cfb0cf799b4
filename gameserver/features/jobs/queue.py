"""The ``jobs`` resource: enqueue a background job by name, from a handler, an HTTP route or another job.

Where a job goes (keys in :class:`gameserver.keys.Keys`, all under the prefix):

- due now: an entry of the stream ``jobs.ready``, read by the workers' consumer group;
- due later (``delay``, ``at``, a retry): the sorted set ``jobs.delayed`` scored by due time in ms, moved into
  the stream when due by one Lua script (so a job moves once, whichever worker moves it);
- with a ``key``: ``jobs.key.<name>.<key>`` is set (NX) in the same script, so the job and its key are written
  together or not at all; while the key lives (``jobs.key_ttl``) the same key is not enqueued again.

The dead letters (the stream ``jobs.dead``) are listed by :meth:`Jobs.dead`, found by id with
:meth:`Jobs.find_dead`, put back with :meth:`Jobs.requeue` and deleted with :meth:`Jobs.drop`: what
``gameserver jobs`` (:mod:`gameserver.features.jobs.command`) does, and what an admin route would.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from gameserver.config import JobsConfig
from gameserver.features.jobs.envelope import BadJob, Envelope, bind, decode, encode
from gameserver.features.jobs.spec import JobEntry, build_jobs
from gameserver.keys import Keys

if TYPE_CHECKING:
    from gameserver.features.jobs.worker import Worker

FIELD = b"m"  # the one field of a stream entry: the encoded envelope
MAX_KEY = 200  # characters in a dedupe key
PROMOTE_BATCH = 100  # delayed jobs moved per script call (a Lua script blocks Redis while it runs)
PERIOD_KEY_MIN_TTL = 60.0  # seconds a periodic job's per-period key lives at least (clock skew between hosts)

# KEYS: stream, delayed set, [dedupe key]. ARGV: envelope, due ms (0: now), key TTL ms, job id.
ENQUEUE = """
if KEYS[3] then
  if not redis.call('SET', KEYS[3], ARGV[4], 'NX', 'PX', ARGV[3]) then return 0 end
end
if tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
else
  redis.call('XADD', KEYS[1], '*', 'm', ARGV[1])
end
return 1
"""

# KEYS: delayed set, stream. ARGV: now ms, batch. The jobs due by now move to the stream, at most one batch.
PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, job in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'm', job)
end
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
return #due
"""

# KEYS: dead stream, ready stream. ARGV: dead entry id, envelope. The dead letter leaves only if its job went back,
# and once: of two operators retrying it at the same time, the second finds it gone.
REQUEUE = """
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', 'm', ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
"""
REQUEUE_BATCH = 500  # script calls per round trip


@dataclass(frozen=True, slots=True)
class DeadJob:
    """A dead letter: the job as it was on its last try, and why that failed."""

    entry_id: str
    job_id: str
    name: str
    args: dict[str, Any]
    tries: int
    error: str
    failed_at: float

    @property
    def is_job(self) -> bool:
        """False for an entry that was not a job (written by something else, or damaged): it can only be dropped."""
        return bool(self.job_id)


class Jobs:
    """Enqueues jobs (``await jobs.enqueue("module.name", ...)``) and holds the job table of this process.

    Args:
        redis: a client of the store that does not decode replies (envelopes are msgpack).
        keys: the key names, with the prefix.
        config: the ``[jobs]`` settings.
        injectable: what the worker can inject, asked when the table is built (features add resources late).
    """

    def __init__(
        self, redis: Redis, keys: Keys, config: JobsConfig, *, injectable: Callable[[], Iterable[str]] = tuple
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.config = config
        self.injectable = injectable
        self.table: dict[str, JobEntry] = {}
        self.worker: Worker | None = None  # this process's, if it runs jobs (jobs.concurrency > 0)
        self.ready = asyncio.Event()  # a job entered the stream from this process: its worker reads at once
        self.delayed = asyncio.Event()  # a job entered the delayed set from here: its worker looks at the due times
        self._enqueue = redis.register_script(ENQUEUE)
        self._promote = redis.register_script(PROMOTE)
        self._requeue = redis.register_script(REQUEUE)

    def build(self, modules: Mapping[str, Any]) -> dict[str, JobEntry]:
        """The job table of ``modules`` (raises ConfigError as start-up does); :meth:`replace_table` swaps it in."""
        return build_jobs(modules, injectable=self.injectable(), config=self.config)

    def replace_table(self, table: Mapping[str, JobEntry]) -> None:
        """Swap in a new job table (start-up, hot reload): runs from now on use it; those under way finish."""
        self.table = dict(table)

    def has(self, name: str) -> bool:
        return name in self.table

    async def enqueue(
        self,
        name: str,
        /,
        *args: Any,
        delay: float | None = None,
        at: float | None = None,
        key: str | None = None,
        **kwargs: Any,
    ) -> str | None:
        """Queue a run of job ``name`` with these arguments; returns its job id, or None if ``key`` was taken.

        Args:
            delay: run it no sooner than this many seconds from now.
            at: run it no sooner than this time (seconds since the epoch, as ``time.time()``).
            key: enqueue it only if no job ``name`` was enqueued with this key in the last ``jobs.key_ttl``
                seconds (an idempotency key: a request retried by its client, a batch retried by its job).

        Delivery is at least once: a job may run again after a worker dies mid-run, so it must be idempotent.
        Enqueue after the transaction that the job reads commits, not inside it (the job may run at once).

        Raises:
            BadJob: no such job, arguments that do not fit its signature or are not msgpack values, or bad options.
            redis.exceptions.RedisError: the store is unreachable (handlers answer ``unavailable``).
        """
        job = self.table.get(name)
        if job is None:
            raise BadJob(f"no job {name} (jobs: {', '.join(sorted(self.table)) or 'none'})")
        bound = bind(job, args, kwargs)
        now = time.time()
        if delay is not None and at is not None:
            raise BadJob("give delay or at, not both")
        due = now
        if delay is not None:
            due = now + _seconds("delay", delay)
        elif at is not None:
            due = _seconds("at", at)
        if key is not None and not (isinstance(key, str) and 0 < len(key) <= MAX_KEY):
            raise BadJob(f"key must be a string of 1-{MAX_KEY} characters")
        return await self._push(job, bound, due=due, now=now, key=key, ttl=self.config.key_ttl)

    async def enqueue_period(self, job: JobEntry, period: int) -> str | None:
        """Queue the run of periodic ``job`` for ``period``, unless another process already did."""
        assert job.every is not None
        ttl = max(2 * job.every, PERIOD_KEY_MIN_TTL)
        start = job.period_start(period)
        return await self._push(job, {}, due=start, now=time.time(), key=f"every.{period}", ttl=ttl)

    async def _push(
        self, job: JobEntry, args: dict[str, Any], *, due: float, now: float, key: str | None, ttl: float
    ) -> str | None:
        envelope = Envelope(uuid.uuid4().hex, job.name, args, 1, math.ceil(due * 1000))  # whole ms, never early
        data = encode(envelope)
        later = due > now
        keys = [self.keys.jobs_stream(), self.keys.jobs_delayed()]
        if key is not None:
            keys.append(self.keys.jobs_key(job.name, key))
        argv: list[bytes | str | int] = [data, envelope.due if later else 0, max(1, int(ttl * 1000)), envelope.id]
        if not await self._enqueue(keys=keys, args=argv):
            return None
        (self.delayed if later else self.ready).set()
        return envelope.id

    async def promote(self, now: float | None = None) -> int:
        """Move the delayed jobs that are due into the stream; returns how many moved."""
        now_ms = int((time.time() if now is None else now) * 1000)
        moved = 0
        while True:
            count = int(
                await self._promote(
                    keys=[self.keys.jobs_delayed(), self.keys.jobs_stream()], args=[now_ms, PROMOTE_BATCH]
                )
            )
            moved += count
            if count < PROMOTE_BATCH:
                return moved

    async def next_due(self) -> float | None:
        """When the earliest delayed job is due (seconds since the epoch); None if there is none."""
        first = await self.redis.zrange(self.keys.jobs_delayed(), 0, 0, withscores=True)
        return float(first[0][1]) / 1000 if first else None

    async def counts(self) -> dict[str, int]:
        """Jobs in the store: ``ready`` (in the stream: waiting or running), ``delayed`` and ``dead``."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(self.keys.jobs_stream())
            pipe.zcard(self.keys.jobs_delayed())
            pipe.xlen(self.keys.jobs_dead())
            ready, delayed, dead = await pipe.execute()
        return {"ready": int(ready), "delayed": int(delayed), "dead": int(dead)}

    async def dead(self, count: int | None = 100) -> list[DeadJob]:
        """The latest ``count`` dead letters (None: all), newest first."""
        entries: Any = await self.redis.xrevrange(self.keys.jobs_dead(), count=count)
        return [_dead_job(entry_id, fields) for entry_id, fields in entries]

    async def find_dead(self, ids: Iterable[str]) -> tuple[list[DeadJob], list[str]]:
        """The dead letters named in ``ids``, each by its job id or its entry id in ``jobs.dead``, newest first; and
        the ids that name none. Reads the whole stream (at most about ``jobs.dead_max`` entries)."""
        wanted = list(dict.fromkeys(ids))
        found = [dead for dead in await self.dead(None) if dead.job_id in wanted or dead.entry_id in wanted]
        named = {dead.job_id for dead in found} | {dead.entry_id for dead in found}
        return found, [name for name in wanted if name not in named]

    async def requeue(self, dead: Iterable[DeadJob]) -> list[DeadJob]:
        """Put dead letters back in the stream, due now, as try 1 again (``max_tries`` fresh tries) with their job
        id and arguments; returns those put back. Each one leaves ``jobs.dead`` in the same script that adds its
        job to ``jobs.ready``, so it is never lost nor requeued twice: one gone meanwhile (retried or dropped by
        someone else) is skipped, as is one that is not a job (:attr:`DeadJob.is_job`).

        The name is not checked against this process's job table: the workers' code decides, and a worker that
        does not know the name fails it (``no job ... in this process``) until it is dead again.
        """
        jobs = [job for job in dead if job.is_job]
        now = math.ceil(time.time() * 1000)
        keys = [self.keys.jobs_dead(), self.keys.jobs_stream()]
        done: list[DeadJob] = []
        for start in range(0, len(jobs), REQUEUE_BATCH):
            batch = jobs[start : start + REQUEUE_BATCH]
            async with self.redis.pipeline(transaction=False) as pipe:
                for job in batch:
                    data = Envelope(job.job_id, job.name, job.args, 1, now).encode()
                    await self._requeue(keys=keys, args=[job.entry_id, data], client=pipe)
                moved = await pipe.execute()
            done.extend(job for job, ok in zip(batch, moved, strict=True) if ok)
        if done:
            self.ready.set()
        return done

    async def drop(self, dead: Iterable[DeadJob]) -> list[DeadJob]:
        """Delete dead letters; returns those deleted (one gone meanwhile is not)."""
        letters = list(dead)
        if not letters:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for letter in letters:
                pipe.xdel(self.keys.jobs_dead(), letter.entry_id)
            deleted = await pipe.execute()
        return [letter for letter, count in zip(letters, deleted, strict=True) if count]


def _dead_job(entry_id: bytes, fields: Mapping[bytes, bytes]) -> DeadJob:
    try:
        envelope = decode(fields.get(FIELD, b""))
        name, job_id, args, tries = envelope.name, envelope.id, envelope.args, envelope.try_
    except ValueError:
        name, job_id, args, tries = "", "", {}, 0
    return DeadJob(
        entry_id=entry_id.decode(),
        job_id=job_id,
        name=name,
        args=args,
        tries=tries,
        error=fields.get(b"error", b"").decode("utf-8", "replace"),
        failed_at=int(fields.get(b"failed_at", b"0")) / 1000,
    )


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadJob(f"{name} must be a number of seconds")
    return float(value)
