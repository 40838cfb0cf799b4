"""The dead letters on a store shared with a running app: `gameserver jobs dead | retry | drop | status` on the real
Redis (``integration``; the command runs in a thread, as another process would, while the app runs in the test's
loop), and the queue's own ``Jobs.requeue`` / ``Jobs.drop`` on both stores.

The jobs live in this file; a package written to the test's tmp dir declares them (as tests/server/test_jobs.py).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gameserver import cli
from gameserver.app import App
from gameserver.features.jobs import Jobs, job
from tests.server.support import wait_until
from tests.server.test_jobs import FAST, eventually_dead, settled, write_package

BROKEN: set[str] = set()  # labels whose job fails
RAN: list[tuple[str, str, int]] = []  # (label, job id, try) of the runs that succeeded


async def fixable(label: str, *, job_id: str, job_try: int, **_: Any) -> None:
    if label in BROKEN:
        raise RuntimeError(f"{label} is broken")
    RAN.append((label, job_id, job_try))


HANDLERS: dict[str, Any] = {}
JOBS = {"fixable": job(fixable, max_tries=1)}


@pytest.fixture(autouse=True)
def clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    BROKEN.clear()
    RAN.clear()
    monkeypatch.chdir(tmp_path)  # the command reads no ./config.toml
    for name in list(os.environ):
        if name.startswith("GAMESERVER_"):
            monkeypatch.delenv(name)


@pytest.fixture
def kit(tmp_path: Path) -> str:
    root = tmp_path / "deadmods"
    write_package(root, "deadkit", f"from {__name__} import HANDLERS, JOBS  # noqa: F401\n")
    return str(root)


async def start(app_factory: Callable[..., Any], kit: str, redis: dict[str, Any]) -> Jobs:
    app: App = await app_factory(modules={"paths": [kit]}, redis=redis, jobs=FAST)
    jobs: Jobs = app.resources.extra["jobs"]
    return jobs


async def dead_jobs(jobs: Jobs, *labels: str) -> list[str]:
    """Enqueue a broken job per label; their job ids once all are dead letters."""
    BROKEN.update(labels)
    ids = []
    for count, label in enumerate(labels, 1):  # one after the other: the dead letters keep this order
        job_id = await jobs.enqueue("deadkit.fixable", label)
        assert job_id is not None
        ids.append(job_id)
        await eventually_dead(jobs, count)
    return ids


class Command:
    """`gameserver jobs ...` against the test's Redis and prefix, through the whole command line."""

    def __init__(self, capsys: pytest.CaptureFixture[str], url: str, prefix: str) -> None:
        self.capsys = capsys
        self.store = ["--set", f"redis.url={url}", "--set", f"redis.prefix={prefix}"]

    async def __call__(self, action: str, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = await asyncio.to_thread(cli.main, ["jobs", action, *self.store, *argv])
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err

    async def json(self, action: str, *argv: str) -> Any:
        code, out, err = await self(action, "--json", *argv)
        assert code == 0, err
        return json.loads(out)


@pytest.mark.integration
async def test_a_dead_job_is_listed_retried_and_run_again_and_one_dropped(
    app_factory: Callable[..., Any],
    kit: str,
    redis_url: str,
    redis_prefix: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    jobs = await start(app_factory, kit, {"url": redis_url, "prefix": redis_prefix})
    command = Command(capsys, redis_url, redis_prefix)
    first, second = await dead_jobs(jobs, "first", "second")

    listed = (await command.json("dead"))["dead"]
    assert [(d["job_id"], d["name"], d["args"], d["tries"]) for d in listed] == [
        (second, "deadkit.fixable", {"label": "second"}, 1),  # newest first
        (first, "deadkit.fixable", {"label": "first"}, 1),
    ]
    assert listed[1]["error"].startswith("Traceback") and listed[1]["error"].endswith("RuntimeError: first is broken\n")
    code, out, _ = await command("dead")
    assert code == 0
    assert [line.split()[:3] for line in out.splitlines()[1:]] == [
        [second, "deadkit.fixable", "1"],
        [first, "deadkit.fixable", "1"],
    ]
    assert out.splitlines()[2].endswith("RuntimeError: first is broken")

    BROKEN.clear()  # fixed: a retry now succeeds
    code, out, err = await command("retry", first)
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"requeued {first} deadkit.fixable", "requeued 1 of 1 dead letters"]
    await wait_until(lambda: len(RAN) == 1)
    assert RAN == [("first", first, 1)]  # the same job id, with fresh tries
    await settled(jobs)
    assert await command.json("status") == {"ready": 0, "delayed": 0, "dead": 1}

    code, out, err = await command("retry", first)  # not a dead letter any more
    assert (code, out.splitlines()[-1], err) == (
        1,
        "requeued 0 of 1 dead letters",
        f"gameserver jobs: no dead letter {first}\n",
    )

    [entry] = [d["entry_id"] for d in listed if d["job_id"] == second]
    code, out, err = await command("drop", entry)  # by its entry id this time
    assert (code, out.splitlines(), err) == (
        0,
        [f"dropped {second} deadkit.fixable", "dropped 1 of 1 dead letters"],
        "",
    )
    assert (await command.json("status"))["dead"] == 0
    assert RAN == [("first", first, 1)]  # a dropped job does not run


@pytest.mark.integration
async def test_retry_all_skips_what_is_not_a_job_and_drop_all_removes_it(
    app_factory: Callable[..., Any],
    kit: str,
    redis_url: str,
    redis_prefix: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    jobs = await start(app_factory, kit, {"url": redis_url, "prefix": redis_prefix})
    command = Command(capsys, redis_url, redis_prefix)
    ids = await dead_jobs(jobs, "a", "b")
    junk = (await jobs.redis.xadd(jobs.keys.jobs_dead(), {b"m": b"\xc1", b"error": b"not a job"})).decode()

    BROKEN.clear()
    code, out, err = await command("retry", "--all")
    assert (code, err) == (1, "")  # one could not be retried
    assert f"skipped {junk} (not a job): it cannot run; drop it" in out.splitlines()
    assert out.splitlines()[-1] == "requeued 2 of 3 dead letters"
    await wait_until(lambda: len(RAN) == 2)
    assert sorted(job_id for _, job_id, _ in RAN) == sorted(ids)

    code, out, _ = await command("drop", "--all")
    assert (code, out.splitlines()) == (0, [f"dropped {junk} (not a job)", "dropped 1 of 1 dead letters"])
    code, out, _ = await command("dead")
    assert (code, out) == (0, f"no dead letters under prefix {redis_prefix!r}\n")


@pytest.fixture(params=[pytest.param("embedded"), pytest.param("redis", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "embedded":
        return {}
    return {"url": request.getfixturevalue("redis_url"), "prefix": request.getfixturevalue("redis_prefix")}


async def test_a_dead_letter_is_requeued_once_and_dropped_once(
    app_factory: Callable[..., Any], kit: str, store: dict[str, Any]
) -> None:
    jobs = await start(app_factory, kit, store)
    job_id, other_id = await dead_jobs(jobs, "once", "other")
    [letter], missing = await jobs.find_dead([job_id, "nope"])
    assert (letter.job_id, missing) == (job_id, ["nope"])
    [other] = (await jobs.find_dead([(await jobs.dead())[0].entry_id]))[0]  # by entry id
    assert other.job_id == other_id

    BROKEN.clear()
    assert await jobs.requeue([letter, letter]) == [letter]  # the second finds it gone: put back once
    assert await jobs.requeue([letter]) == []
    await wait_until(lambda: len(RAN) == 1)
    assert RAN == [("once", job_id, 1)]
    assert await jobs.drop([other, other]) == [other]
    assert await jobs.dead() == []


async def test_an_unreachable_redis_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = await Command(capsys, "redis://127.0.0.1:1/0", "gs:")("status")
    assert (code, out) == (1, "")
    assert err.startswith("gameserver jobs: cannot read the queue from Redis: ConnectionError")
