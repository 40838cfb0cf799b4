"""`gameserver new module`: what it writes passes its own test and the project's checks, and answers a live call."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.blackbox.support import GAMESERVER, clean_env, run_command, start_logged, stop
from tests.clients import TcpClient

pytestmark = pytest.mark.blackbox

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(cwd: Path, *argv: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, env={**clean_env(), **env}, capture_output=True, text=True, timeout=300
    )


def test_a_new_module_passes_its_test_and_the_checks_and_answers_a_live_call(tmp_path: Path) -> None:
    made = run(tmp_path, *GAMESERVER, "new", "module", "quests")
    assert made.returncode == 0, made.stderr
    assert "wrote game_modules/quests/" in made.stdout
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.py"))
    assert files == [
        "game_modules/quests/__init__.py",
        "game_modules/quests/handlers.py",
        "game_modules/quests/migrations/__init__.py",
        "game_modules/quests/migrations/quests_0001_greetings.py",
        "game_modules/quests/settings.py",
        "game_modules/quests/tables.py",
        "tests/modules/test_quests.py",
    ]
    again = run(tmp_path, *GAMESERVER, "new", "module", "quests")
    assert again.returncode == 2 and "exists already; nothing was written" in again.stderr

    # scripts/check: the project's ruff settings (gameserver first-party, as ruff finds it in a checkout).
    config = ["--config", REPO / "pyproject.toml", "--config", 'lint.isort.known-first-party = ["gameserver"]']
    for check in (("format", "--check"), ("check",)):
        result = run(tmp_path, BIN / "ruff", *check, *config, "game_modules", "tests")
        assert result.returncode == 0, result.stdout + result.stderr
    # mypy strict on the module (scripts/check's mypy covers gameserver/ and enums/, not modules/: this is more).
    mypy = [BIN / "mypy", "--config-file", REPO / "setup.cfg", "--cache-dir", REPO / ".mypy_cache", "game_modules"]
    typed = run(tmp_path, *mypy, MYPYPATH=str(REPO))  # mypy does not follow the editable install's import hook
    assert typed.returncode == 0, typed.stdout + typed.stderr

    tested = run(
        tmp_path, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "-o", "asyncio_default_fixture_loop_scope=function", "tests/modules/test_quests.py",
    )  # fmt: skip
    assert tested.returncode == 0 and "1 passed" in tested.stdout, tested.stdout + tested.stderr

    # The live call the guide's first page makes.
    command = run_command(tmp_path / "var", "--set", "modules.paths=game_modules")
    process, ports = start_logged(command, tmp_path, tmp_path / "server.log")
    try:

        async def call() -> dict[str, object]:
            client = await TcpClient.open(ports["gate-tcp"])
            try:
                return await client.call("quests.greet", {"name": "ada"})
            finally:
                await client.close()

        assert asyncio.run(call()) == {"id": 1, "ok": True, "data": {"text": "hello, ada!", "count": 1}}
    finally:
        assert stop(process) == 0, (tmp_path / "server.log").read_text()
