"""Background jobs between processes, on the in-process store (two apps in one test share it) and on the real Redis
(``integration``): a job whose worker dies is reclaimed and run by another worker, and the basics hold on both.

The jobs are those of tests/server/test_jobs.py (its ``jobkit`` package), which record into its ``RUNS``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from gameserver.app import App
from gameserver.config import Config
from gameserver.features.jobs import Jobs
from tests.server.support import wait_until
from tests.server.test_jobs import FAST, GATES, RUNS, eventually_dead, runs, write_package

RECLAIM_AFTER = 0.3


@pytest.fixture(autouse=True)
def clean() -> None:
    RUNS.clear()
    GATES.clear()


@pytest.fixture
def kit(tmp_path: Path) -> str:
    root = tmp_path / "jobmods"
    write_package(root, "jobkit", "from tests.server.test_jobs import HANDLERS, JOBS  # noqa: F401\n")
    return str(root)


@pytest.fixture(params=[pytest.param("embedded"), pytest.param("redis", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The ``redis`` section of apps that share one store: the in-process one (every app of the test opens the
    same server), or the real Redis under a prefix of the test's own."""
    if request.param == "embedded":
        shared = fakeredis.FakeServer()
        monkeypatch.setattr(fakeredis, "FakeServer", lambda *args, **kwargs: shared)
        return {}
    return {"url": request.getfixturevalue("redis_url"), "prefix": request.getfixturevalue("redis_prefix")}


@pytest.fixture
async def apps(config_factory: Callable[..., Config], kit: str, store: dict[str, Any]) -> AsyncIterator[Any]:
    """Start an app on the shared store: ``await apps(node_id, **server)``; those still running stop at teardown."""
    started: list[App] = []

    async def start(node_id: str, **server: Any) -> App:
        config = config_factory(
            modules={"paths": [kit]},
            redis=store,
            jobs={**FAST, "reclaim_after": RECLAIM_AFTER},
            server={"node_id": node_id, **server},
        )
        app = App(config)
        await app.start()
        started.append(app)
        return app

    yield start
    for app in reversed(started):
        if not app._stopping.is_set():
            await app.stop()


def jobs_of(app: App) -> Jobs:
    jobs: Jobs = app.resources.extra["jobs"]
    return jobs


async def test_a_job_whose_worker_dies_is_reclaimed_and_run_by_another(apps: Callable[..., Any]) -> None:
    dying: App = await apps("a", shutdown_grace=0.0)
    job_id = await jobs_of(dying).enqueue("jobkit.survivor")
    await wait_until(lambda: len(runs("survivor")) == 1)
    other: App = await apps("b")

    # No grace: the running job is cancelled unacknowledged and nobody touches its entry again, as after a kill.
    await dying.stop()
    await wait_until(lambda: len(runs("survivor-done")) == 1)

    [done] = runs("survivor-done")
    assert (done.job_id, done.job_try, done.args["node"]) == (job_id, 2, "b")  # the reclaimed delivery is try 2
    assert [run.args["node"] for run in runs("survivor")] == ["a", "b"]
    jobs = jobs_of(other)
    async with asyncio.timeout(5):
        while (await jobs.counts())["ready"]:  # acknowledged and deleted once done
            await asyncio.sleep(0.005)
    assert await jobs.dead() == []


async def test_a_job_whose_worker_dies_on_its_last_try_goes_to_the_dead_letters(apps: Callable[..., Any]) -> None:
    dying: App = await apps("a", shutdown_grace=0.0)
    job_id = await jobs_of(dying).enqueue("jobkit.blocker", "never")  # max_tries 1
    await wait_until(lambda: len(runs("blocker")) == 1)
    other: App = await apps("b")
    await dying.stop()

    jobs = jobs_of(other)
    await eventually_dead(jobs)
    [dead] = await jobs.dead()
    assert (dead.job_id, dead.tries) == (job_id, 2)
    assert dead.error == "its worker stopped before finishing it (delivery 2); no tries left of 1"
    assert len(runs("blocker")) == 1  # not run again


async def test_run_retry_dead_letter_delay_and_key_on_each_store(apps: Callable[..., Any]) -> None:
    app: App = await apps("a")
    jobs = jobs_of(app)
    await jobs.enqueue("jobkit.record", 1, label="now")
    await jobs.enqueue("jobkit.record", 2, delay=0.05)
    assert await jobs.enqueue("jobkit.record", 3, key="once") is not None
    assert await jobs.enqueue("jobkit.record", 4, key="once") is None
    await jobs.enqueue("jobkit.flaky", 1)
    failing = await jobs.enqueue("jobkit.fails")

    await wait_until(lambda: len(runs("record")) == 3 and len(runs("flaky")) == 2)
    await eventually_dead(jobs)
    assert sorted(run.args["value"] for run in runs("record")) == [1, 2, 3]
    assert [run.job_try for run in runs("flaky")] == [1, 2]
    [dead] = await jobs.dead()
    assert dead.job_id == failing and f"ValueError: boom {failing}" in dead.error
