"""The developer loop as a new author meets it: where things are at start-up, a crash's answer in development,
and the one line a broken module gets, at start-up as on a reload."""

from __future__ import annotations

import re
import shlex
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.blackbox.support import START_TIMEOUT, clean_env, run_command, start_logged, stop

pytestmark = pytest.mark.blackbox

INIT = """from gameserver.dispatch.registry import handler

from .handlers import crash

HANDLERS = {"crash": handler(crash, login=False)}
"""

HANDLERS = """async def crash() -> None:
    raise KeyError("missing")
"""

BROKEN = """async def crash() -> None:
    raise KeyError("missing"
"""


def wait_for(log: Path, pattern: str) -> re.Match[str]:
    deadline = time.monotonic() + START_TIMEOUT
    while not (match := re.search(pattern, log.read_text(errors="replace"), re.MULTILINE)):
        assert time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.05)  # waiting for the line; nothing asserts on elapsed time
    return match


def test_start_up_says_where_things_are_and_a_crash_reaches_the_developer(tmp_path: Path) -> None:
    package = tmp_path / "mods" / "brittle"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(INIT)
    (package / "handlers.py").write_text(HANDLERS)
    command = run_command(
        tmp_path / "var", "--reload", "--set", "modules.paths=mods", "--set", "modules.reload_poll=0.05"
    )
    log = tmp_path / "server.log"
    process, ports = start_logged(command, tmp_path, log)
    try:
        text = log.read_text(errors="replace")
        assert f"console: http://127.0.0.1:{ports['http']}/\n" in text
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['http']}/", timeout=10) as page:
            assert page.status == 200 and b"play-test console" in page.read()
        client = wait_for(log, r"^terminal client: (.+)$").group(1)
        assert f"client --url ws://127.0.0.1:{ports['ws']}/gate --http-url http://127.0.0.1:{ports['http']}" in client

        # The printed command works as printed; `--reload` is development: the crash names itself and its line.
        played = subprocess.run(
            shlex.split(client),
            input="brittle.crash {}\n",
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert played.returncode == 0, played.stderr
        where = "mods/brittle/handlers.py:2"
        assert re.search(
            rf"^error brittle.crash internal: programming error: KeyError: 'missing' \(at {where}\) "
            r"\(correlation id \S+-1\)$",
            played.stdout,
            re.MULTILINE,
        ), played.stdout

        (package / "handlers.py").write_text(BROKEN)
        reloaded = wait_for(log, r"reload of brittle failed, the previous version keeps running: (.+)$").group(1)
        assert reloaded.startswith("module brittle: SyntaxError: ") and reloaded.endswith(
            "(at mods/brittle/handlers.py:2)"
        ), reloaded
    finally:
        assert stop(process) == 0, log.read_text(errors="replace")

    # The same broken module at a cold start: the same line, as a module error, and no start.
    cold = subprocess.run(
        run_command(tmp_path / "var", "--set", "modules.paths=mods"),
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cold.returncode == 2, cold.stderr
    assert f"module error: {reloaded}\n" in cold.stderr, cold.stderr
