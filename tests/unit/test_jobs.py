"""Background jobs without a store (gameserver/features/jobs/spec.py, envelope.py): the job table's start-up checks,
argument
binding at enqueue time, the msgpack envelope, the backoff and the periods of periodic jobs."""

from __future__ import annotations

import types
from typing import Any

import msgpack
import pytest

from gameserver.config import JobsConfig
from gameserver.errors import ConfigError
from gameserver.features.jobs import BadJob, Job, every, job
from gameserver.features.jobs.envelope import MAX_SIZE, Envelope, backoff, bind, decode, encode
from gameserver.features.jobs.spec import JobEntry, build_jobs, compile_job

INJECTABLE = frozenset({"db", "redis", "config", "jobs", "log", "job_id", "job_try", "scheduled_at"})
CONFIG = JobsConfig()


def compile(fn: Any, **settings: Any) -> JobEntry:
    return compile_job("kit.fn", Job(fn, **settings), injectable=INJECTABLE, config=CONFIG)


def refused(fn: Any, **settings: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        compile(fn, **settings)
    return str(caught.value)


async def reward(uid: int, coins: int = 10, note: str | None = None, *, db: Any, job_try: int, **_: Any) -> None:
    pass


def package(**attrs: Any) -> types.ModuleType:
    module = types.ModuleType("kit")
    for name, value in attrs.items():
        setattr(module, name, value)
    return module


# -- the table


def test_settings_default_to_the_config_and_can_be_set_per_job() -> None:
    plain = compile(reward)
    assert (plain.timeout, plain.max_tries, plain.backoff, plain.every) == (60.0, 5, 1.0, None)
    assert plain.entry.inject == ("db", "job_try")  # `**_`: only what it names
    own = compile(reward, timeout=2.5, max_tries=1, backoff=0.0)
    assert (own.timeout, own.max_tries, own.backoff) == (2.5, 1, 0.0)


def test_the_handler_checks_apply_and_name_the_job() -> None:
    def sync(**_: Any) -> None:
        pass

    where = f"tests/unit/test_jobs.py:{sync.__code__.co_firstlineno}"  # where the function is defined
    assert refused(sync) == f"job kit.fn: {sync.__qualname__!r} must be an async function ({where})"

    async def shadows(db: int, **_: Any) -> None:
        pass

    assert refused(shadows) == "job kit.fn: parameter db is a resource name; put it after `*`"

    async def wants_uid(*, uid: int, **_: Any) -> None:  # a job runs for nobody: there is no caller
        pass

    assert refused(wants_uid).startswith("job kit.fn: nothing provides keyword-only uid (resources: ")

    async def star(*rest: int) -> None:
        pass

    assert refused(star) == "job kit.fn: *rest cannot be filled; callers pass named args"


def test_argument_names_of_enqueue_options_are_refused() -> None:
    async def clash(at: float, key: str, **_: Any) -> None:
        pass

    assert refused(clash) == "job kit.fn: argument at, key is an option of jobs.enqueue(); rename it"


def test_bad_settings_are_refused() -> None:
    assert refused(reward, timeout=0.0) == "job kit.fn: timeout must be more than 0 seconds, got 0.0"
    assert refused(reward, max_tries=0) == "job kit.fn: max_tries must be an integer from 1, got 0"
    assert refused(reward, backoff=-1.0) == "job kit.fn: backoff must be 0 seconds or more, got -1.0"

    async def tick(**_: Any) -> None:
        pass

    assert refused(tick, every=0) == "job kit.fn: every must be more than 0 seconds, got 0"


def test_a_periodic_job_cannot_require_arguments() -> None:
    message = str(
        pytest.raises(ConfigError, compile_job, "kit.fn", every(60, reward), injectable=INJECTABLE, config=CONFIG).value
    )
    assert message == "job kit.fn: a periodic job is enqueued without arguments, but uid has no default"


def test_build_reads_each_packages_jobs() -> None:
    async def tick(*, scheduled_at: float, **_: Any) -> None:
        pass

    table = build_jobs(
        {
            "kit": package(HANDLERS={}, JOBS={"reward": reward, "tick": every(86400, tick, offset=4 * 3600)}),
            "plain": package(HANDLERS={}),  # no JOBS: nothing to run
        },
        injectable={"db", "redis", "config"},
        config=CONFIG,
    )
    assert sorted(table) == ["kit.reward", "kit.tick"]
    assert table["kit.tick"].every == 86400 and table["kit.tick"].offset == 4 * 3600
    assert table["kit.reward"].entry.log.name == __name__  # its module's logger, as a handler's


def test_build_refuses_jobs_that_are_not_a_mapping_and_bad_jobs() -> None:
    with pytest.raises(ConfigError, match="module kit: JOBS must be a mapping"):
        build_jobs({"kit": package(JOBS=[reward])}, injectable=INJECTABLE, config=CONFIG)

    def sync(**_: Any) -> None:
        pass

    with pytest.raises(ConfigError, match="job kit.broken: .* must be an async function"):
        build_jobs({"kit": package(JOBS={"broken": job(sync)})}, injectable=INJECTABLE, config=CONFIG)


# -- enqueue-time binding


def test_positional_and_keyword_arguments_bind_by_name() -> None:
    entry = compile(reward)
    assert bind(entry, (7,), {}) == {"uid": 7}
    assert bind(entry, (7, 20), {"note": "hi"}) == {"uid": 7, "coins": 20, "note": "hi"}
    assert bind(entry, (), {"uid": 7, "note": None}) == {"uid": 7, "note": None}


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "missing argument uid for kit.fn"),
        ((1, 2, "x", 4), {}, "job kit.fn takes at most 3 arguments, got 4"),
        ((1,), {"uid": 2}, "job kit.fn: argument uid given twice"),
        ((1,), {"colour": "red"}, "unknown argument colour for kit.fn"),
        (("7",), {}, "uid must be an integer"),
        ((True,), {}, "uid must be an integer"),
        ((1,), {"note": 3}, "note must be a string or null"),
    ],
)
def test_arguments_that_do_not_fit_are_refused(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(BadJob) as caught:
        bind(compile(reward), args, kwargs)
    assert str(caught.value) == message


# -- the envelope


def test_envelope_round_trip() -> None:
    envelope = Envelope("abc", "kit.reward", {"uid": 7, "blob": b"\x00\xff", "nested": {"1": [1.5, None]}}, 3, 1234)
    assert decode(encode(envelope)) == envelope
    assert decode(encode(envelope)).next_try(99) == Envelope("abc", "kit.reward", envelope.args, 4, 99)


def test_arguments_msgpack_cannot_carry_are_refused() -> None:
    with pytest.raises(BadJob, match="its arguments must be msgpack values"):
        encode(Envelope("abc", "kit.fn", {"when": object()}))
    with pytest.raises(BadJob, match=f"at most {MAX_SIZE}"):
        encode(Envelope("abc", "kit.fn", {"blob": b"x" * MAX_SIZE}))


@pytest.mark.parametrize(
    "data",
    [
        b"\xc1",  # never used in msgpack
        msgpack.packb([1, 2]),
        msgpack.packb({"id": "a", "name": "kit.fn"}),
        msgpack.packb({"id": "a", "name": "kit.fn", "args": {}, "try": 0, "due": 0}),
        msgpack.packb({"id": "a", "name": "kit.fn", "args": {}, "try": 1, "due": "soon"}),
    ],
)
def test_what_is_not_an_envelope_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode(data)


# -- backoff and periods


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff(1.0, n, 10.0) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 8.0, 10.0]
    assert backoff(0.0, 3, 10.0) == 0.0
    assert backoff(2.0, 10_000, 3600.0) == 3600.0  # no overflow for a huge try count


def test_periods_count_from_the_epoch_plus_the_offset() -> None:
    async def tick(**_: Any) -> None:
        pass

    daily = compile_job("kit.tick", every(86400, tick, offset=4 * 3600), injectable=INJECTABLE, config=CONFIG)
    day = 20_000
    four_am = day * 86400 + 4 * 3600
    assert daily.period(four_am) == day and daily.period_start(day) == four_am
    assert daily.period(four_am - 0.001) == day - 1  # 03:59:59.999 is still the day before's period
    assert daily.period(four_am + 86399.999) == day
