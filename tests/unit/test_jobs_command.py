"""`gameserver jobs` without a store (gameserver/features/jobs/command.py, its parser in gameserver/cli.py): the
arguments it
refuses, what it says without redis.url, and its output as pure functions of the dead letters. Against a real
Redis: tests/integration/test_jobs_cli.py and tests/blackbox/test_jobs_cli.py."""

from __future__ import annotations

import pytest

from gameserver.cli import main
from gameserver.features.jobs import DeadJob
from gameserver.features.jobs.command import ERROR_WIDTH, change_text, last_line, status_text, table, to_json

TRACEBACK = """Traceback (most recent call last):
  File "modules/daily/jobs.py", line 12, in thank
    raise ValueError("no such player 7")
ValueError: no such player 7

"""
FAILED_AT = 1795393600.5  # 2026-11-23 00:26:40 UTC


def letter(job_id: str = "9f2c", name: str = "daily.thank", entry_id: str = "1795393600500-0") -> DeadJob:
    return DeadJob(entry_id, job_id, name, {"uid": 7}, 5, TRACEBACK, FAILED_AT)


NOT_A_JOB = DeadJob("1795393600600-0", "", "", {}, 0, "not a job: not msgpack: unpack(b) received extra data.", 0.0)


pytestmark = pytest.mark.usefixtures("cli_env")  # no ./config.toml, no GAMESERVER_* variables


@pytest.mark.parametrize(
    "argv",
    [
        ["jobs", "retry"],
        ["jobs", "drop"],
        ["jobs", "retry", "9f2c", "--all"],
        ["jobs", "dead", "--limit", "-1"],
        ["jobs"],
        ["jobs", "status", "9f2c"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage: gameserver" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["status"], ["dead", "--json"], ["retry", "--all"], ["drop", "9f2c"]])
def test_without_redis_it_explains_the_in_process_store_and_exits_1(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert main(["jobs", *argv]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "redis.url is not set" in captured.err and "another process cannot see them" in captured.err


def test_a_config_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "status", "--set", "jobs.bogus=1"]) == 2
    assert "config error" in capsys.readouterr().err


def test_the_last_line_of_an_error_says_what_was_raised() -> None:
    assert last_line(TRACEBACK) == "ValueError: no such player 7"
    assert last_line("") == ""
    long = last_line("x" * (ERROR_WIDTH + 10))
    assert len(long) == ERROR_WIDTH and long.endswith("…")


def test_the_table_has_one_row_per_dead_letter() -> None:
    lines = table([letter(), letter("a1b2c3", "mail.broadcast"), NOT_A_JOB]).splitlines()
    assert lines[0].split() == ["ID", "JOB", "TRIES", "FAILED", "(UTC)", "ERROR"]
    assert lines[1].split()[:5] == ["9f2c", "daily.thank", "5", "2026-11-23", "00:26:40"]
    assert lines[1].endswith("  ValueError: no such player 7")
    assert lines[0].index("ERROR") == lines[1].index("ValueError")  # columns line up
    assert lines[2].split()[:2] == ["a1b2c3", "mail.broadcast"]
    assert lines[3].split()[:5] == ["1795393600600-0", "(not", "a", "job)", "-"]  # dropped by its entry id


def test_json_carries_the_whole_error_and_both_ids() -> None:
    assert to_json(letter()) == {
        "entry_id": "1795393600500-0",
        "job_id": "9f2c",
        "name": "daily.thank",
        "args": {"uid": 7},
        "tries": 5,
        "failed_at": FAILED_AT,
        "error": TRACEBACK,
    }


def test_status_names_each_count() -> None:
    lines = status_text({"ready": 3, "delayed": 0, "dead": 12}).splitlines()
    assert [line.split()[:2] for line in lines] == [["ready", "3"], ["delayed", "0"], ["dead", "12"]]


def test_change_text_says_what_happened_to_each_id() -> None:
    done, gone = letter("aa", entry_id="1-0"), letter("bb", entry_id="2-0")
    text = change_text("retry", [done, gone, NOT_A_JOB], [done], ["cc"])
    assert text.splitlines() == [
        "requeued aa daily.thank",
        "skipped bb daily.thank: gone meanwhile (retried or dropped by someone else)",
        "skipped 1795393600600-0 (not a job): it cannot run; drop it",
        "requeued 1 of 4 dead letters",
    ]
    assert change_text("drop", [NOT_A_JOB], [NOT_A_JOB], []).splitlines() == [
        "dropped 1795393600600-0 (not a job)",
        "dropped 1 of 1 dead letters",
    ]
