"""The job table: each module's ``JOBS`` by ``package.name``, compiled once at start-up like ``HANDLERS``.

A job is a plain async function. Parameters before ``*`` are its arguments (given to ``jobs.enqueue``, checked
there against the annotations exactly as a handler's client args are); keyword-only parameters are injected like
a handler's (``db``, ``redis``, ``config``, ``log``, ``push``, ``mail``, ``jobs``, ...) plus the per-run values
``job_id``, ``job_try`` (1 on the first run) and ``scheduled_at`` (when the run was due, seconds since the epoch;
for a periodic job the start of its period). The signature checks are
:func:`gameserver.dispatch.registry.compile_entry`'s:
start-up fails on a sync function, a duplicate name, or a parameter nothing can fill.
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gameserver.config import JobsConfig
from gameserver.dispatch.registry import Entry, Handler, HandlerFn, compile_entry
from gameserver.errors import ConfigError

PER_RUN = ("job_id", "job_try", "scheduled_at")
"""What the worker adds to each run, besides the shared resources and the job's ``log``."""

ENQUEUE_OPTIONS = frozenset({"delay", "at", "key"})
"""``jobs.enqueue``'s own keywords: a job's arguments cannot have these names."""


@dataclass(frozen=True, slots=True)
class Job:
    """A job with per-job settings, like :class:`gameserver.dispatch.registry.Handler` (and arq's ``func()``).

    Args:
        fn: the async function.
        timeout: seconds a run may take before it is cancelled and counts as failed; None takes ``jobs.timeout``.
        max_tries: runs before a failing job goes to the dead-letter stream; None takes ``jobs.max_tries``.
        backoff: seconds before the first retry, doubled for each next one; None takes ``jobs.backoff``.
        every: run the job once per this many seconds (periodic jobs take no arguments).
        offset: with ``every``: periods start at ``offset`` seconds past each multiple of ``every`` since the
            epoch (UTC), e.g. ``every=86400, offset=4 * 3600`` runs daily at 04:00 UTC.
    """

    fn: HandlerFn
    timeout: float | None = None
    max_tries: int | None = None
    backoff: float | None = None
    every: float | None = None
    offset: float = 0.0


def job(
    fn: HandlerFn, *, timeout: float | None = None, max_tries: int | None = None, backoff: float | None = None
) -> Job:
    return Job(fn, timeout=timeout, max_tries=max_tries, backoff=backoff)


def every(
    seconds: float,
    fn: HandlerFn,
    *,
    offset: float = 0.0,
    timeout: float | None = None,
    max_tries: int | None = None,
    backoff: float | None = None,
) -> Job:
    """A periodic job: one run per period across every process (the first process to reach the period's start
    enqueues it; a Redis key per period keeps the others from doing it again). A period that starts while no
    worker runs is skipped: read what is due from your data, not from the count of runs."""
    return Job(fn, timeout=timeout, max_tries=max_tries, backoff=backoff, every=seconds, offset=offset)


@dataclass(slots=True)
class JobEntry:
    """A registered job: its compiled signature (:class:`gameserver.dispatch.registry.Entry`) and its settings."""

    entry: Entry
    max_tries: int
    backoff: float
    every: float | None
    offset: float

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def timeout(self) -> float:
        return self.entry.timeout

    def period(self, now: float) -> int:
        """The number of the period ``now`` falls in (periodic jobs only)."""
        assert self.every is not None
        return math.floor((now - self.offset) / self.every)

    def period_start(self, period: int) -> float:
        assert self.every is not None
        return period * self.every + self.offset


def compile_job(name: str, spec: Job, *, injectable: Iterable[str], config: JobsConfig) -> JobEntry:
    """Check a job's signature and settings.

    Raises:
        ConfigError: what :func:`~gameserver.dispatch.registry.compile_entry` refuses, a setting out of range, an
            argument named like an enqueue option, or a periodic job with a required argument.
    """
    timeout = config.timeout if spec.timeout is None else spec.timeout
    max_tries = config.max_tries if spec.max_tries is None else spec.max_tries
    backoff = config.backoff if spec.backoff is None else spec.backoff
    if not timeout > 0:
        raise ConfigError(f"job {name}: timeout must be more than 0 seconds, got {timeout!r}")
    if isinstance(max_tries, bool) or not isinstance(max_tries, int) or max_tries < 1:
        raise ConfigError(f"job {name}: max_tries must be an integer from 1, got {max_tries!r}")
    if not backoff >= 0:
        raise ConfigError(f"job {name}: backoff must be 0 seconds or more, got {backoff!r}")
    entry = compile_entry(
        name, Handler(spec.fn, login=False), injectable=injectable, default_timeout=timeout, kind="job"
    )
    clash = sorted(ENQUEUE_OPTIONS & entry.names)
    if clash:
        raise ConfigError(f"job {name}: argument {', '.join(clash)} is an option of jobs.enqueue(); rename it")
    if spec.every is not None:
        if not spec.every > 0:
            raise ConfigError(f"job {name}: every must be more than 0 seconds, got {spec.every!r}")
        if entry.required:
            missing = ", ".join(sorted(entry.required))
            raise ConfigError(f"job {name}: a periodic job is enqueued without arguments, but {missing} has no default")
    return JobEntry(entry, max_tries=max_tries, backoff=backoff, every=spec.every, offset=spec.offset)


def build_jobs(
    packages: Mapping[str, types.ModuleType], *, injectable: Iterable[str], config: JobsConfig
) -> dict[str, JobEntry]:
    """The job table of ``packages``: each one's optional ``JOBS = {"name": fn_or_job(...)}``.

    Raises:
        ConfigError: ``JOBS`` is not a mapping, or a job is refused (see :func:`compile_job`).
    """
    injectable = frozenset(injectable) | frozenset(PER_RUN) | {"log"}  # each job's logger, as a handler's
    table: dict[str, JobEntry] = {}
    for package, module in packages.items():
        jobs: Any = getattr(module, "JOBS", None)
        if jobs is None:
            continue
        if not isinstance(jobs, Mapping):
            raise ConfigError(f"module {package}: JOBS must be a mapping {{'name': function}}")
        for key, value in jobs.items():
            name = f"{package}.{key}"
            spec = value if isinstance(value, Job) else Job(value)
            table[name] = compile_job(name, spec, injectable=injectable, config=config)
    return table


class Retry(Exception):
    """Raised by a job to be run again after ``delay`` seconds (None: the job's backoff), like arq's ``Retry``.
    It counts as a failed try: past ``max_tries`` the job goes to the dead letters."""

    def __init__(self, delay: float | None = None, reason: str = "") -> None:
        super().__init__(reason or "the job asked to be retried")
        self.delay = delay
