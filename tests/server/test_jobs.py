"""Background jobs in-process (SQLite + the in-process store): enqueue -> run, retries with backoff, dead letters,
timeouts, delays, dedupe keys, periodic jobs across two apps, graceful shutdown, start-up checks, hot reload.

The jobs live in this file; a package written to the test's tmp dir (``modules.paths``) declares them, so they
record into :data:`RUNS` here. Tests wait on what the jobs record, never on the clock; the only time assertions
are lower bounds (a retry or a delayed job never runs before it is due).
"""

from __future__ import annotations

import asyncio
import logging
import math
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from gameserver import metrics
from gameserver.app import App
from gameserver.config import Config
from gameserver.dispatch.registry import handler
from gameserver.errors import ConfigError
from gameserver.features.jobs import BadJob, Jobs, Retry, every, job
from gameserver.features.jobs.worker import GROUP
from gameserver.storage.kv import open_redis
from tests.clients import TcpClient
from tests.server.support import wait_until

FAST = {"poll": 0.02, "backoff": 0.01, "concurrency": 4}
MS = 0.001  # due times are whole milliseconds (rounded up): allow for the float on the other side


@dataclass(frozen=True)
class Run:
    name: str
    args: dict[str, Any]
    job_id: str
    job_try: int
    scheduled_at: float
    started: float


RUNS: list[Run] = []
GATES: dict[str, asyncio.Event] = {}


def runs(name: str) -> list[Run]:
    return [run for run in RUNS if run.name == name]


def note(name: str, job_id: str = "", job_try: int = 0, scheduled_at: float = 0.0, **args: Any) -> None:
    RUNS.append(Run(name, args, job_id, job_try, scheduled_at, time.time()))


async def record(value: int, label: str = "x", *, job_id: str, job_try: int, scheduled_at: float, **_: Any) -> None:
    note("record", job_id, job_try, scheduled_at, value=value, label=label)


async def flaky(fail_times: int, *, job_id: str, job_try: int, scheduled_at: float, **_: Any) -> None:
    note("flaky", job_id, job_try, scheduled_at)
    if job_try <= fail_times:
        raise RuntimeError(f"flaky failure on try {job_try}")


async def fails(*, job_id: str, job_try: int, **_: Any) -> None:
    note("fails", job_id, job_try)
    raise ValueError(f"boom {job_id}")


async def slow(*, job_id: str, **_: Any) -> None:
    note("slow", job_id)
    await asyncio.sleep(60)


async def asks_retry(*, job_id: str, job_try: int, scheduled_at: float, **_: Any) -> None:
    note("asks_retry", job_id, job_try, scheduled_at)
    if job_try == 1:
        raise Retry(delay=0.05, reason="not yet")


async def blocker(gate: str, *, job_id: str, job_try: int, **_: Any) -> None:
    note("blocker", job_id, job_try, gate=gate)
    await GATES.setdefault(gate, asyncio.Event()).wait()
    note("blocker-done", job_id, job_try, gate=gate)


async def survivor(*, job_id: str, job_try: int, config: Config, **_: Any) -> None:
    """Hangs on its first try (its worker dies under it); finishes on the next, noting which node ran it."""
    note("survivor", job_id, job_try, node=config.server.node_id)
    if job_try == 1:
        await asyncio.Event().wait()
    note("survivor-done", job_id, job_try, node=config.server.node_id)


async def tick(*, job_id: str, scheduled_at: float, **_: Any) -> None:
    note("tick", job_id, 1, scheduled_at)


async def later(value: int, *, jobs: Jobs, **_: Any) -> dict[str, Any]:
    """A handler that enqueues: the `jobs` resource is injected like any other."""
    return {"job_id": await jobs.enqueue("jobkit.record", value, label="from a handler")}


HANDLERS = {"later": handler(later, login=False)}
JOBS = {
    "record": record,
    "flaky": job(flaky, max_tries=3, backoff=0.05),
    "fails": job(fails, max_tries=2),
    "slow": job(slow, timeout=0.05, max_tries=1),
    "asks_retry": asks_retry,
    "blocker": job(blocker, max_tries=1),
    "survivor": job(survivor, max_tries=3),
}
TICK_EVERY = 0.2
TICK_JOBS = {"tick": every(TICK_EVERY, tick)}


@pytest.fixture(autouse=True)
def clean() -> None:
    RUNS.clear()
    GATES.clear()


def write_package(root: Path, name: str, source: str) -> None:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text(textwrap.dedent(source))


@pytest.fixture
def kit(tmp_path: Path) -> str:
    """A module folder with ``jobkit`` (this file's HANDLERS and JOBS)."""
    root = tmp_path / "jobmods"
    write_package(root, "jobkit", f"from {__name__} import HANDLERS, JOBS  # noqa: F401\n")
    return str(root)


@pytest.fixture
def tick_kit(tmp_path: Path) -> str:
    root = tmp_path / "tickmods"
    write_package(root, "tickkit", f"from {__name__} import TICK_JOBS as JOBS  # noqa: F401\n\nHANDLERS = {{}}\n")
    return str(root)


async def start(app_factory: Callable[..., Any], kit: str, **jobs: Any) -> tuple[App, Jobs]:
    app: App = await app_factory(modules={"paths": [kit]}, jobs={**FAST, **jobs})
    return app, app.resources.extra["jobs"]


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def settled(jobs: Jobs) -> None:
    """Every job enqueued so far has run and ended (a job records before its worker acknowledges it)."""
    worker = jobs.worker
    assert worker is not None
    async with asyncio.timeout(10):
        while True:
            counts = await jobs.counts()
            if not counts["ready"] and not counts["delayed"] and not worker.running:
                return
            await asyncio.sleep(0.005)


async def eventually_dead(jobs: Jobs, count: int = 1) -> None:
    async with asyncio.timeout(5):
        while len(await jobs.dead()) < count:
            await asyncio.sleep(0.005)


async def enqueue_at_startup(resources: Any) -> None:
    """A module's ``startup(resources)``: the job table is in place by then, so it can enqueue."""
    await resources.extra["jobs"].enqueue("startkit.record", 5, label="from startup")


@pytest.fixture
def startup_kit(tmp_path: Path) -> str:
    root = tmp_path / "startmods"
    source = f"from {__name__} import JOBS, enqueue_at_startup as startup  # noqa: F401\n\nHANDLERS = {{}}\n"
    write_package(root, "startkit", source)
    return str(root)


# -- enqueue and run


async def test_a_job_enqueued_by_a_handler_runs_with_its_arguments(app_factory: Callable[..., Any], kit: str) -> None:
    app, jobs = await start(app_factory, kit)
    client = await TcpClient.open(app.ports["gate-tcp"])
    reply = await client.call("jobkit.later", {"value": 7})
    await client.close()
    assert reply["ok"], reply
    job_id = reply["data"]["job_id"]
    direct = await jobs.enqueue("jobkit.record", 8)  # and from anything holding the resource, by position or name

    await wait_until(lambda: len(runs("record")) == 2)
    by_value = {run.args["value"]: run for run in runs("record")}
    assert by_value[7].args == {"value": 7, "label": "from a handler"} and by_value[7].job_id == job_id
    assert by_value[8].args == {"value": 8, "label": "x"} and by_value[8].job_id == direct
    assert {run.job_try for run in by_value.values()} == {1}
    assert all(run.started >= run.scheduled_at - MS for run in by_value.values())
    await settled(jobs)
    assert await jobs.counts() == {"ready": 0, "delayed": 0, "dead": 0}  # acknowledged and deleted


async def test_bad_enqueues_are_refused_before_anything_is_stored(app_factory: Callable[..., Any], kit: str) -> None:
    _, jobs = await start(app_factory, kit)
    with pytest.raises(BadJob, match="no job jobkit.nope"):
        await jobs.enqueue("jobkit.nope")
    with pytest.raises(BadJob, match="value must be an integer"):
        await jobs.enqueue("jobkit.record", "seven")
    with pytest.raises(BadJob, match="missing argument value"):
        await jobs.enqueue("jobkit.record", label="y")
    with pytest.raises(BadJob, match="give delay or at, not both"):
        await jobs.enqueue("jobkit.record", 1, delay=1, at=time.time())
    with pytest.raises(BadJob, match="key must be a string"):
        await jobs.enqueue("jobkit.record", 1, key="")
    with pytest.raises(BadJob, match="delay must be a number"):
        await jobs.enqueue("jobkit.record", 1, delay=math.nan)
    assert await jobs.counts() == {"ready": 0, "delayed": 0, "dead": 0}


# -- failures


async def test_a_failing_job_is_retried_with_backoff_until_it_succeeds(
    app_factory: Callable[..., Any], kit: str
) -> None:
    _, jobs = await start(app_factory, kit)
    retries, oks = (
        sample("gameserver_job_retries_total", job="jobkit.flaky"),
        sample("gameserver_job_runs_total", job="jobkit.flaky", outcome="ok"),
    )
    job_id = await jobs.enqueue("jobkit.flaky", 2)

    await wait_until(lambda: len(runs("flaky")) == 3)
    first, second, third = runs("flaky")
    assert [r.job_try for r in (first, second, third)] == [1, 2, 3]
    assert {r.job_id for r in (first, second, third)} == {job_id}
    assert second.scheduled_at >= first.started + 0.05 - MS  # backoff 0.05 s, doubled for the next try
    assert third.scheduled_at >= second.started + 0.1 - MS
    assert all(r.started >= r.scheduled_at - MS for r in (second, third))
    await wait_until(lambda: sample("gameserver_job_runs_total", job="jobkit.flaky", outcome="ok") == oks + 1)
    assert sample("gameserver_job_retries_total", job="jobkit.flaky") == retries + 2
    assert sample("gameserver_job_runs_total", job="jobkit.flaky", outcome="failed") >= 2
    assert await jobs.dead() == []


async def test_a_job_that_keeps_failing_goes_to_the_dead_letters_with_its_error(
    app_factory: Callable[..., Any], kit: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, jobs = await start(app_factory, kit)
    dead_before = sample("gameserver_job_dead_total", job="jobkit.fails")
    with caplog.at_level(logging.WARNING, logger="gameserver.features.jobs"):
        job_id = await jobs.enqueue("jobkit.fails")
        await eventually_dead(jobs)
    [dead] = await jobs.dead()
    assert (dead.job_id, dead.name, dead.args, dead.tries) == (job_id, "jobkit.fails", {}, 2)
    assert dead.error.startswith("Traceback") and f"ValueError: boom {job_id}" in dead.error
    assert [r.job_try for r in runs("fails")] == [1, 2]
    assert sample("gameserver_job_dead_total", job="jobkit.fails") == dead_before + 1
    assert await jobs.counts() == {"ready": 0, "delayed": 0, "dead": 1}
    await wait_until(lambda: sample("gameserver_job_queue", state="dead") == 1)  # counted for /metrics each poll
    failures = [r for r in caplog.records if r.name == "gameserver.features.jobs" and job_id in r.getMessage()]
    assert [r.levelname for r in failures] == ["WARNING", "ERROR"]  # retried, then dead: each with its traceback
    assert all(r.exc_info is not None for r in failures)


async def test_a_job_past_its_timeout_is_cancelled_and_counts_as_failed(
    app_factory: Callable[..., Any], kit: str
) -> None:
    _, jobs = await start(app_factory, kit)
    job_id = await jobs.enqueue("jobkit.slow")
    await eventually_dead(jobs)
    [dead] = await jobs.dead()
    assert dead.job_id == job_id and dead.tries == 1
    assert "TimeoutError: timed out after 0.05s" in dead.error


async def test_a_job_can_ask_for_a_retry(app_factory: Callable[..., Any], kit: str) -> None:
    _, jobs = await start(app_factory, kit)
    await jobs.enqueue("jobkit.asks_retry")
    await wait_until(lambda: len(runs("asks_retry")) == 2)
    first, second = runs("asks_retry")
    assert second.job_try == 2 and second.scheduled_at >= first.started + 0.05 - MS


async def test_what_is_not_a_job_goes_to_the_dead_letters(app_factory: Callable[..., Any], kit: str) -> None:
    app, jobs = await start(app_factory, kit)
    await jobs.redis.xadd(app.resources.keys.jobs_stream(), {b"m": b"\xc1 not msgpack"})
    await eventually_dead(jobs)
    [dead] = await jobs.dead()
    assert dead.name == "" and dead.error.startswith("not a job: not msgpack")


# -- when


async def test_delay_and_at_run_no_sooner_than_asked(app_factory: Callable[..., Any], kit: str) -> None:
    _, jobs = await start(app_factory, kit)
    enqueued = time.time()
    await jobs.enqueue("jobkit.record", 1, delay=0.15)
    await jobs.enqueue("jobkit.record", 2, at=enqueued + 0.15)
    await jobs.enqueue("jobkit.record", 3, delay=3600)  # waits in the delayed set
    await wait_until(lambda: len(runs("record")) == 2)
    assert sorted(run.args["value"] for run in runs("record")) == [1, 2]
    assert all(run.started >= enqueued + 0.15 and run.scheduled_at >= enqueued + 0.15 - MS for run in runs("record"))
    assert (await jobs.counts())["delayed"] == 1


async def test_a_dedupe_key_enqueues_a_job_once(app_factory: Callable[..., Any], kit: str) -> None:
    _, jobs = await start(app_factory, kit)
    first = await jobs.enqueue("jobkit.record", 1, key="daily-reward:42")
    assert first is not None
    assert await jobs.enqueue("jobkit.record", 2, key="daily-reward:42") is None
    counts = await jobs.counts()
    assert counts["ready"] + counts["delayed"] <= 1  # the second was not stored (the first may be done already)
    await wait_until(lambda: len(runs("record")) == 1)
    assert await jobs.enqueue("jobkit.record", 3, key="daily-reward:42") is None  # still within jobs.key_ttl
    assert await jobs.enqueue("jobkit.record", 4, key="daily-reward:43") is not None  # another key
    assert await jobs.enqueue("jobkit.flaky", 0, key="daily-reward:42") is not None  # keys are per job
    await wait_until(lambda: len(runs("record")) == 2 and len(runs("flaky")) == 1)
    assert [run.args["value"] for run in runs("record")] == [1, 4]


# -- periodic


async def test_a_periodic_job_runs_once_per_period_across_two_apps_sharing_a_store(
    config_factory: Callable[..., Config], tick_kit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = fakeredis.FakeServer()
    monkeypatch.setattr(fakeredis, "FakeServer", lambda *args, **kwargs: shared)  # both apps open the same store
    config = config_factory(modules={"paths": [tick_kit]}, jobs=FAST)
    apps = [App(config), App(config)]
    for app in apps:
        await app.start()
    try:
        await wait_until(lambda: len({run.scheduled_at for run in runs("tick")}) >= 3)
    finally:
        for app in apps:
            await app.stop()
    starts = Counter(run.scheduled_at for run in runs("tick"))
    assert set(starts.values()) == {1}, starts  # each period ran exactly once, whichever app reached it first
    for start_time in starts:
        assert math.isclose(start_time / TICK_EVERY, round(start_time / TICK_EVERY), abs_tol=1e-6)


# -- shutdown, concurrency 0, start-up, reload


async def test_shutdown_lets_running_jobs_finish_within_the_grace_and_leaves_the_rest_pending(
    config_factory: Callable[..., Config], kit: str
) -> None:
    app = App(config_factory(modules={"paths": [kit]}, jobs=FAST, server={"shutdown_grace": 0.5}))
    await app.start()
    jobs: Jobs = app.resources.extra["jobs"]
    worker = jobs.worker
    assert worker is not None
    finishing = await jobs.enqueue("jobkit.blocker", "finishes")
    await jobs.enqueue("jobkit.blocker", "hangs")
    await wait_until(lambda: len(runs("blocker")) == 2)

    stopping = asyncio.create_task(app.stop())
    await wait_until(lambda: not worker.taking)
    await jobs.enqueue("jobkit.record", 5)  # after the shutdown began: not taken
    GATES["finishes"].set()
    await stopping

    assert [run.job_id for run in runs("blocker-done")] == [finishing]
    assert runs("record") == []
    store = open_redis(app.config.redis, decode=False, fake_server=app.resources.fake_redis_server)
    try:
        keys = app.resources.keys
        pending = await store.xpending(keys.jobs_stream(), GROUP)
        assert pending["pending"] == 1  # the hung job: cancelled unacknowledged, for another worker to reclaim
        assert await store.xlen(keys.jobs_stream()) == 2  # it and the record job nobody read
        assert await store.zcard(keys.jobs_delayed()) == 0 and await store.xlen(keys.jobs_dead()) == 0
    finally:
        await store.aclose()


async def test_concurrency_zero_enqueues_but_runs_nothing(app_factory: Callable[..., Any], kit: str) -> None:
    _, jobs = await start(app_factory, kit, concurrency=0)
    assert jobs.worker is None
    await jobs.enqueue("jobkit.record", 1)
    assert (await jobs.counts())["ready"] == 1


async def test_start_up_fails_on_a_bad_job(config_factory: Callable[..., Config], tmp_path: Path) -> None:
    source = """
        HANDLERS = {}

        def not_async(**_):
            pass

        JOBS = {"broken": not_async}
    """
    write_package(tmp_path / "badmods", "badjobs", source)
    app = App(config_factory(modules={"paths": [str(tmp_path / "badmods")]}))
    with pytest.raises(ConfigError, match="job badjobs.broken: .* must be an async function"):
        await app.start()


HOT = """
    from {test} import note

    HANDLERS = {{}}


    async def work(**_):
        note("hot", version={version!r})


    JOBS = {{"work": work}}
"""


async def test_hot_reload_swaps_the_job_table(app_factory: Callable[..., Any], tmp_path: Path) -> None:
    root = tmp_path / "hotmods"
    name = f"hotjobs{uuid.uuid4().hex[:8]}"
    write_package(root, name, HOT.format(test=__name__, version="one"))
    app: App = await app_factory(modules={"paths": [str(root)], "reload": True, "reload_poll": 60.0}, jobs=FAST)
    jobs: Jobs = app.resources.extra["jobs"]
    reloader = app.reloader
    assert reloader is not None
    await jobs.enqueue(f"{name}.work")
    await wait_until(lambda: len(runs("hot")) == 1)

    write_package(root, name, HOT.format(test=__name__, version="two"))
    assert await reloader.check() is True
    await jobs.enqueue(f"{name}.work")
    await wait_until(lambda: len(runs("hot")) == 2)
    assert [run.args["version"] for run in runs("hot")] == ["one", "two"]

    write_package(root, name, HOT.format(test=__name__, version="three").replace("async def work", "def work"))
    assert await reloader.check() is False  # refused as at start-up: the table in use stays
    assert "job" in reloader.error and "must be an async function" in reloader.error
    await jobs.enqueue(f"{name}.work")
    await wait_until(lambda: len(runs("hot")) == 3)
    assert runs("hot")[-1].args["version"] == "two"


async def test_a_module_startup_can_enqueue(app_factory: Callable[..., Any], startup_kit: str) -> None:
    app, jobs = await start(app_factory, startup_kit)
    await wait_until(lambda: len(runs("record")) == 1)
    assert runs("record")[0].args == {"value": 5, "label": "from startup"}
