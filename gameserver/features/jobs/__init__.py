"""Background jobs on Redis (seed 004: slow, non-urgent work off the request path; arq's design, our code).

A module declares its jobs next to its handlers, ``JOBS = {"name": fn_or_job(...)}`` (job ``module.name``):
plain async functions whose parameters before ``*`` are the job's arguments and whose keyword-only ones are
injected as a handler's are (plus ``job_id``, ``job_try``, ``scheduled_at``). Anything with the resources
enqueues one with ``await jobs.enqueue("module.name", *args, delay=..., at=..., key=..., **kwargs)``; processes
with the ``worker`` role run them, ``jobs.concurrency`` at a time.

- :mod:`~gameserver.features.jobs.spec`: :func:`job`, :func:`every`, :class:`Retry`, the job table.
- :mod:`~gameserver.features.jobs.envelope`: a job's bytes (msgpack), argument binding, the backoff; pure.
- :mod:`~gameserver.features.jobs.queue`: :class:`Jobs`, the ``jobs`` resource (enqueue; the delayed set's mover).
- :mod:`~gameserver.features.jobs.worker`: :class:`Worker`: the consumer group, retries, dead letters, reclaiming,
  periodic jobs.
- :mod:`~gameserver.features.jobs.feature`: the set-up in an app.

The design and its guarantees are in docs/architecture.md ("Background jobs"); how to write one in
docs/modules.md.
"""

from gameserver.features.jobs.envelope import BadJob
from gameserver.features.jobs.queue import DeadJob, Jobs
from gameserver.features.jobs.spec import Job, Retry, every, job

__all__ = ["BadJob", "DeadJob", "Job", "Jobs", "Retry", "every", "job"]
