"""``gameserver jobs status | dead | retry | drop``: the job queue and its dead letters as this config's Redis and
prefix hold them, read and changed directly (no HTTP, no running server), through
:class:`~gameserver.features.jobs.Jobs`.

The command does not import the game modules, so it does not know the job table: ``retry`` puts back whatever a
dead letter names, and a job the workers no longer have fails its tries again (docs/operations.md, "Background
jobs").
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from gameserver.config import Config
from gameserver.features.jobs.queue import DeadJob, Jobs
from gameserver.keys import Keys
from gameserver.storage.kv import open_redis

T = TypeVar("T")

COLUMNS = ("ID", "JOB", "TRIES", "FAILED (UTC)", "ERROR")
LIST_DEFAULT = 50  # dead letters `jobs dead` shows unless told otherwise
ERROR_WIDTH = 100  # characters of an error's last line in the table


def main(
    config: Config,
    action: str,
    *,
    ids: Sequence[str] = (),
    all_: bool = False,
    as_json: bool = False,
    limit: int | None = None,
) -> int:
    """Run ``gameserver jobs <action>`` (``limit``: dead letters to list, None for :data:`LIST_DEFAULT`, 0 for all);
    0, or 1 if Redis cannot tell or an id names no dead letter that could be retried or dropped."""
    if not config.redis.url:
        print(
            "gameserver jobs: redis.url is not set, so each server keeps its jobs in its own memory (the in-process "
            "store), where another process cannot see them; set redis.url (--set redis.url=...) to reach the queue "
            "of servers that share a Redis",
            file=sys.stderr,
        )
        return 1
    if action == "status":
        return status(config, as_json=as_json)
    if action == "dead":
        return dead(config, limit=LIST_DEFAULT if limit is None else limit, as_json=as_json)
    return change(config, action, ids=ids, all_=all_)


def status(config: Config, *, as_json: bool) -> int:
    counts = _run(config, "read the queue from Redis", lambda jobs: jobs.counts())
    if counts is None:
        return 1
    if as_json:
        print(json.dumps(counts, indent=2))
    else:
        print(status_text(counts))
    return 0


def dead(config: Config, *, limit: int, as_json: bool) -> int:
    letters = _run(config, "read the dead letters from Redis", lambda jobs: jobs.dead(limit or None))
    if letters is None:
        return 1
    if as_json:
        print(json.dumps({"dead": [to_json(letter) for letter in letters]}, indent=2, default=repr))
    elif letters:
        print(table(letters))
    else:
        print(f"no dead letters under prefix {config.redis.prefix!r}")
    return 0


def change(config: Config, action: str, *, ids: Sequence[str], all_: bool) -> int:
    """``retry`` or ``drop`` the dead letters named in ``ids`` (job ids or entry ids), or all of them."""

    async def apply(jobs: Jobs) -> tuple[list[DeadJob], list[DeadJob], list[str]]:
        found, missing = (await jobs.dead(None), []) if all_ else await jobs.find_dead(ids)
        done = await (jobs.requeue(found) if action == "retry" else jobs.drop(found))
        return found, done, missing

    result = _run(config, f"{action} dead letters in Redis", apply)
    if result is None:
        return 1
    found, done, missing = result
    print(change_text(action, found, done, missing))
    for name in missing:
        print(f"gameserver jobs: no dead letter {name}", file=sys.stderr)
    return 1 if missing or len(done) < len(found) else 0


def _run(config: Config, what: str, work: Callable[[Jobs], Awaitable[T]]) -> T | None:
    async def go() -> T:
        redis = open_redis(config.redis, decode=False)  # envelopes are msgpack
        try:
            return await work(Jobs(redis, Keys(config.redis.prefix), config.jobs))
        finally:
            await redis.aclose()

    try:
        return asyncio.run(go())
    except Exception as exc:
        print(f"gameserver jobs: cannot {what}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


# -- output: pure


def status_text(counts: dict[str, int]) -> str:
    notes = {
        "ready": "due now: waiting for a worker or running",
        "delayed": "due later: delay/at, or a retry waiting out its backoff",
        "dead": "failed their last try: gameserver jobs dead",
    }
    return "\n".join(f"{name:<8} {counts[name]:>6}  {note}" for name, note in notes.items())


def last_line(error: str) -> str:
    """The line of a traceback that says what was raised (its last non-blank one), cut to the table's width."""
    line = next((line.strip() for line in reversed(error.splitlines()) if line.strip()), "")
    return line if len(line) <= ERROR_WIDTH else line[: ERROR_WIDTH - 1] + "…"


def to_json(letter: DeadJob) -> dict[str, Any]:
    return {
        "entry_id": letter.entry_id,
        "job_id": letter.job_id,
        "name": letter.name,
        "args": letter.args,
        "tries": letter.tries,
        "failed_at": letter.failed_at,
        "error": letter.error,
    }


def table(letters: Sequence[DeadJob]) -> str:
    """The dead letters, one a row; an entry that is not a job shows its entry id (drop it by that)."""
    rows = [COLUMNS]
    for letter in letters:
        failed = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(letter.failed_at))
        if letter.is_job:
            rows.append((letter.job_id, letter.name, str(letter.tries), failed, last_line(letter.error)))
        else:
            rows.append((letter.entry_id, "(not a job)", "-", failed, last_line(letter.error)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    return "\n".join("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]) for row in rows)


def change_text(action: str, found: Sequence[DeadJob], done: Sequence[DeadJob], missing: Sequence[str]) -> str:
    """What ``retry`` or ``drop`` did, one line per dead letter, then a count."""
    verb = "requeued" if action == "retry" else "dropped"
    done_ids = {letter.entry_id for letter in done}
    lines = []
    for letter in found:
        name = f"{letter.job_id} {letter.name}" if letter.is_job else f"{letter.entry_id} (not a job)"
        if letter.entry_id in done_ids:
            lines.append(f"{verb} {name}")
        elif not letter.is_job:
            lines.append(f"skipped {name}: it cannot run; drop it")
        else:
            lines.append(f"skipped {name}: gone meanwhile (retried or dropped by someone else)")
    lines.append(f"{verb} {len(done)} of {len(found) + len(missing)} dead letters")
    return "\n".join(lines)
