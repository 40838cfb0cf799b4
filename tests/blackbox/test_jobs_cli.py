"""An operator's round trip on real Redis: a `gameserver run` worker lets a job die, `gameserver jobs dead` (another
process) lists it, `gameserver jobs retry` puts it back once it can succeed, and the server runs it
(docs/operations.md, "Background jobs")."""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.blackbox.support import GAMESERVER, clean_env, run_command, start_logged, stop
from tests.conftest import delete_prefixed, new_prefix

pytestmark = [pytest.mark.blackbox, pytest.mark.integration]

DEADLINE = 30.0  # seconds before a wait fails; nothing asserts how long it took

# A job that fails until a file exists, then records its try; the module enqueues it once at start-up.
PACKAGE = """
from pathlib import Path

from gameserver.features.jobs import job


async def fixable(folder: str, *, job_try: int, **_):
    if not (Path(folder) / "fixed").exists():
        raise RuntimeError("not fixed yet")
    (Path(folder) / "ran").write_text(str(job_try))


async def startup(resources):
    await resources.extra["jobs"].enqueue("bbjobs.fixable", str(Path(__file__).parent.parent))


HANDLERS = {}
JOBS = {"fixable": job(fixable, max_tries=1)}
"""


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[list[str]]:
    """The `--set` flags of a queue of this test's own on the shared Redis."""
    prefix = new_prefix()
    yield ["--set", f"redis.url={redis_url}", "--set", f"redis.prefix={prefix}"]
    await delete_prefixed(redis_url, prefix)


def jobs_command(tmp: Path, store: list[str], *argv: str) -> subprocess.CompletedProcess[str]:
    command = [*GAMESERVER, "jobs", *argv, *store]
    return subprocess.run(command, cwd=tmp, env=clean_env(), capture_output=True, text=True, timeout=60)


def dead(tmp: Path, store: list[str]) -> list[dict[str, Any]]:
    result = jobs_command(tmp, store, "dead", "--json")
    assert result.returncode == 0, result.stderr
    letters: list[dict[str, Any]] = json.loads(result.stdout)["dead"]
    return letters


def until(condition: Any) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_dead_job_is_listed_and_retried_from_the_command_line(tmp_path: Path, store: list[str]) -> None:
    mods = tmp_path / "mods"
    (mods / "bbjobs").mkdir(parents=True)
    (mods / "bbjobs" / "__init__.py").write_text(textwrap.dedent(PACKAGE))
    command = run_command(tmp_path / "var", "--set", f"modules.paths={mods}", *store, roles="worker")
    process, _ = start_logged(command, tmp_path, tmp_path / "server.log")
    try:
        until(lambda: dead(tmp_path, store))
        [letter] = dead(tmp_path, store)
        assert (letter["name"], letter["tries"]) == ("bbjobs.fixable", 1)
        assert letter["error"].rstrip().endswith("RuntimeError: not fixed yet")
        table = jobs_command(tmp_path, store, "dead")
        assert table.stdout.splitlines()[1].split()[:3] == [letter["job_id"], "bbjobs.fixable", "1"]

        (mods / "fixed").touch()  # the job's folder is its package's parent
        retried = jobs_command(tmp_path, store, "retry", letter["job_id"])
        assert retried.returncode == 0, retried.stderr
        ran = mods / "ran"
        until(lambda: ran.exists() and ran.read_text())
        assert ran.read_text() == "1"  # fresh tries
        status = jobs_command(tmp_path, store, "status", "--json")
        assert json.loads(status.stdout)["dead"] == 0
    finally:
        assert stop(process) == 0, (tmp_path / "server.log").read_text()
