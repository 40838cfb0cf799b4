"""A job as it travels through Redis: pure values and bytes, no I/O (STYLE.md, "The codec is pure").

An :class:`Envelope` is msgpack of ``{"id", "name", "args", "try", "due"}``: the job's id (kept across retries),
its ``module.name``, its arguments by parameter name, the try it is for (1 first) and when it was due (ms since
the epoch). It is the one field (``m``) of a stream entry, the member of the delayed set, and the ``m`` of a
dead-letter entry.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import msgpack

from gameserver.errors import BadRequest
from gameserver.features.jobs.spec import JobEntry

MAX_SIZE = 1024 * 1024
"""The largest encoded job: arguments say what to do, data the job reads itself (a batch's cursor, not its rows)."""


class BadJob(ValueError):
    """``jobs.enqueue()`` refused a job: an unknown name, arguments that do not fit its signature or cannot be
    msgpack-encoded, or a bad option. A bug in the caller, like a call with the wrong arguments."""


@dataclass(frozen=True, slots=True)
class Envelope:
    id: str
    name: str
    args: dict[str, Any]
    try_: int = 1
    due: int = 0  # ms since the epoch

    def encode(self) -> bytes:
        return msgpack.packb(  # type: ignore[no-any-return]
            {"id": self.id, "name": self.name, "args": self.args, "try": self.try_, "due": self.due}, use_bin_type=True
        )

    def next_try(self, due: int) -> Envelope:
        return replace(self, try_=self.try_ + 1, due=due)


def decode(data: bytes) -> Envelope:
    """The envelope in ``data``.

    Raises:
        ValueError: ``data`` is not an envelope (written by something else, or damaged).
    """
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several types for bad input
        raise ValueError(f"not msgpack: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("not a job: expected a map")
    job_id, name, args, try_, due = (value.get(k) for k in ("id", "name", "args", "try", "due"))
    if not (isinstance(job_id, str) and isinstance(name, str) and isinstance(args, dict)):
        raise ValueError("not a job: id, name and args are missing")
    if type(try_) is not int or try_ < 1 or type(due) is not int:
        raise ValueError("not a job: try and due must be integers")
    return Envelope(job_id, name, args, try_, due)


def bind(job: JobEntry, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments of a call ``job(*args, **kwargs)`` by parameter name, checked against the job's signature.

    Raises:
        BadJob: too many positional arguments, one given twice, or what :meth:`Entry.check_args` refuses.
    """
    names = list(job.entry.params)
    if len(args) > len(names):
        raise BadJob(f"job {job.name} takes at most {len(names)} arguments, got {len(args)}")
    bound = dict(zip(names, args, strict=False))
    twice = sorted(bound.keys() & kwargs.keys())
    if twice:
        raise BadJob(f"job {job.name}: argument {', '.join(twice)} given twice")
    bound.update(kwargs)
    try:
        job.entry.check_args(bound)
    except BadRequest as exc:
        raise BadJob(exc.message) from None
    return bound


def encode(envelope: Envelope) -> bytes:
    """The envelope's bytes.

    Raises:
        BadJob: an argument msgpack cannot carry (an object, a set, a date: pass what it is made of), or the job is
            over :data:`MAX_SIZE`.
    """
    try:
        data = envelope.encode()
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadJob(f"job {envelope.name}: its arguments must be msgpack values (str, int, list, dict, ...): {exc}")
    if len(data) > MAX_SIZE:
        raise BadJob(f"job {envelope.name}: {len(data)} bytes of arguments, at most {MAX_SIZE}")
    return data


def backoff(base: float, try_: int, cap: float) -> float:
    """Seconds before the retry that follows failed try ``try_``: ``base`` doubled for each earlier failure."""
    if base <= 0:
        return 0.0
    return min(cap, base * 2.0 ** min(try_ - 1, 64))
