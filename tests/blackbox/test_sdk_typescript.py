"""The TypeScript SDK (clients/typescript), built and run as CI runs it: `npm ci`, `tsc --strict`, then its
`node --test` suite against a `gameserver run` subprocess; and the generated layer catching a changed handler at
compile time. Without node or npm these tests skip, and fail in CI."""

from __future__ import annotations

import re
import shutil
import subprocess
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from gameserver import sdk
from gameserver.dispatch.registry import handler
from gameserver.sdk.model import describe
from tests.blackbox.support import clean_env, run_command, start_logged, stop
from tests.conftest import IN_CI
from tests.fixtures.modules import PATH as FIXTURE_MODULES

pytestmark = pytest.mark.blackbox

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "typescript"
NPM_TIMEOUT = 240.0  # `npm ci` from the npm cache takes seconds; a cold cache fetches six packages
NODE_TIMEOUT = 120.0


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def _run(command: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"{' '.join(command)} did not finish in {timeout:g} s:\n{exc.stdout}\n{exc.stderr}"
        ) from None
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def package() -> Path:
    """clients/typescript with its locked dependencies installed and compiled (`strict` in tsconfig.json), and its
    runtime type-checked again against the browser's DOM types alone."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _missing("node and npm are not installed: apt-get install nodejs npm")
    # npm keeps its cache (~/.npm) between runs: `ci` then installs from it without the network.
    _run(["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"], PACKAGE, NPM_TIMEOUT)
    tsc = str(PACKAGE / "node_modules" / ".bin" / "tsc")
    _run([tsc, "-p", ".", "--strict"], PACKAGE, NPM_TIMEOUT)
    _run([tsc, "-p", "tsconfig.browser.json"], PACKAGE, NPM_TIMEOUT)  # src/ needs nothing of Node's: DOM types only
    return PACKAGE


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, int]]:
    command = run_command(
        tmp_path / "var",
        "--chat-port",
        "0",
        "--set",
        f'modules.paths=["{FIXTURE_MODULES}"]',
        "--set",
        "auth.hash_memory_kib=8",
        "--set",
        "auth.hash_time_cost=1",
        "--set",
        "chat.history_on_join=10",  # the chat test checks the HISTORY lines sent unasked after a (re)login
        roles="gate,auth,worker,chat",
    )
    process, ports = start_logged(command, ROOT, tmp_path / "server.log")
    try:
        yield ports
    finally:
        assert stop(process) == 0, (tmp_path / "server.log").read_text()


@pytest.mark.timeout(NPM_TIMEOUT + NODE_TIMEOUT)
def test_the_sdk_suite_passes_against_a_live_server(package: Path, server: dict[str, int]) -> None:
    env = {
        **clean_env(),
        "GAMESERVER_WS": f"ws://127.0.0.1:{server['ws']}",
        "GAMESERVER_HTTP": f"http://127.0.0.1:{server['http']}",
    }
    output = _run(["node", "--test", "dist/test/"], package, NODE_TIMEOUT, env)
    counts = dict(re.findall(r"^# (tests|pass|fail|skipped) (\d+)$", output, re.MULTILINE))
    assert counts["fail"] == "0" and counts["skipped"] == "0", output
    assert int(counts["pass"]) >= 16 and "# SKIP" not in output, output  # the live suite ran, not only the offline one
    # The example game loop of docs/clients.md, as a player would run it.
    played = _run(["node", "dist/examples/bot.js", "docbot", "3"], package, NODE_TIMEOUT, env)
    assert "playing as docbot" in played and "[world] docbot: tick 3:" in played, played
    assert "done: best score" in played, played


SHOP = """
async def buy(item: int{extra}) -> int:
    \"\"\"Buys one item; returns the coins left.\"\"\"
    return 0
"""

USE = """
import type { Caller } from "./gate.js";
import { GameApi } from "./generated/index.js";

export function shop(caller: Caller): Promise<number> {
  return new GameApi(caller).shop.buy({ item: 1 });
}
"""


def shop_module(extra: str) -> types.ModuleType:
    """A module package ``shop`` whose handler ``buy`` takes ``item`` and then ``extra``."""
    module = types.ModuleType("shop")
    exec(SHOP.format(extra=extra), module.__dict__)
    module.HANDLERS = {"buy": handler(module.buy, login=False)}
    return module


@pytest.mark.timeout(NPM_TIMEOUT + NODE_TIMEOUT)
def test_a_changed_handler_signature_breaks_the_old_call_at_compile_time(package: Path, tmp_path: Path) -> None:
    project = tmp_path / "client"
    shutil.copytree(package / "src", project / "src", ignore=shutil.ignore_patterns("generated"))
    shutil.copy(package / "tsconfig.json", project / "tsconfig.json")
    (project / "node_modules").symlink_to(package / "node_modules")
    (project / "src" / "use.ts").write_text(USE)
    tsc = [
        str(package / "node_modules" / ".bin" / "tsc"),
        "-p",
        ".",
        "--noEmit",
        "--incremental",
    ]  # the 2nd run rechecks less

    def regenerate(extra: str) -> subprocess.CompletedProcess[str]:
        files = sdk.render("typescript", describe({"shop": shop_module(extra)}))
        sdk.write(project / "src" / "generated", files, "typescript")
        return subprocess.run(tsc, cwd=project, capture_output=True, text=True, timeout=NODE_TIMEOUT)

    first = regenerate("")
    assert first.returncode == 0, first.stdout + first.stderr
    second = regenerate(", count: int")
    assert second.returncode != 0, "the old call still compiles after the handler gained a required argument"
    assert "src/use.ts" in second.stdout and "'count'" in second.stdout, second.stdout
