"""The C# SDK (clients/csharp) compiled by Debian's mono `mcs`, its scenario run under `mono` against `gameserver
run`: register, login, typed calls into every shipped module, pushes, chat and its history, a restart of the server
(a forced disconnect) with the sessions re-bound, a timeout, typed errors. The program's steps are in
clients/csharp/Tests~/Scenario.cs; this test starts, restarts and stops the server around it."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.blackbox.support import clean_env, run_command, start_logged, stop
from tests.conftest import IN_CI
from tests.fixtures.modules import PATH as FIXTURE_MODULES

pytestmark = pytest.mark.blackbox

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "csharp"
# Debian's mono-mcs and mono-runtime, plus System.Net.Http (libmono-system-net-http4.0-cil; part of mono-devel)
NET_HTTP = Path("/usr/lib/mono/4.5/System.Net.Http.dll")
SCENARIO_TIMEOUT = 120.0  # a hang guard for the whole program; the program guards each wait itself


def require_mono() -> tuple[str, str]:
    """The paths of mcs and mono; skips (fails in CI) when they or System.Net.Http are missing."""
    mcs, mono = shutil.which("mcs"), shutil.which("mono")
    if mcs and mono and NET_HTTP.exists():
        return mcs, mono
    message = (
        "mono is not installed (apt-get install mono-mcs libmono-system-net-http4.0-cil; scripts/services does in CI)"
    )
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def compile_scenario(mcs: str, out: Path) -> Path:
    """The runtime, the checked-in generated layer and the scenario as one console program (warnings are errors)."""
    exe = out / "Scenario.exe"
    command = [mcs, "-target:exe", "-warnaserror+", "-r:System.Net.Http.dll", f"-out:{exe}"]
    command += ["-recurse:Runtime/*.cs", "Tests~/Scenario.cs"]
    result = subprocess.run(command, cwd=CLIENT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return exe


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.mark.timeout(SCENARIO_TIMEOUT + 60)
def test_the_scenario_under_mono(tmp_path: Path) -> None:
    mcs, mono = require_mono()
    exe = compile_scenario(mcs, tmp_path)
    gate, ws, http, chat = free_ports(4)  # fixed, so that the restarted server is where the clients reconnect
    command = run_command(
        tmp_path / "var",
        "--set",
        f"modules.paths={FIXTURE_MODULES}",
        "--chat-port",
        str(chat),
        "--set",
        "server.shutdown_grace=2.0",
        "--set",
        "auth.hash_memory_kib=8",  # argon2id at its cheapest: the scenario logs in a few times
        "--set",
        "auth.hash_time_cost=1",
        "--set",
        "chat.history_on_join=10",  # the scenario checks the HISTORY lines sent unasked after a login
        roles="gate,chat,auth,worker",
        gate=gate,
        ws=ws,
        http=http,
    )
    logs = [tmp_path / "server-1.log"]
    lines: list[str] = []

    def story() -> str:
        return "\n".join(lines) + "".join(f"\n--- {log.name} ---\n{log.read_text(errors='replace')}" for log in logs)

    server, _ = start_logged(command, tmp_path, logs[0])
    program = subprocess.Popen(
        [mono, "--debug", str(exe), f"http://127.0.0.1:{http}", f"ws://127.0.0.1:{ws}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(),
    )
    try:
        assert program.stdout is not None and program.stdin is not None
        for line in program.stdout:
            lines.append(line.rstrip("\n"))
            if lines[-1] == "restart":  # the forced disconnect: SIGTERM (WebSocket close 1001), then a new process
                assert stop(server) == 0, story()
                logs.append(tmp_path / "server-2.log")
                server, _ = start_logged(command, tmp_path, logs[-1])
                program.stdin.write("restarted\n")
                program.stdin.flush()
        code = program.wait(timeout=SCENARIO_TIMEOUT)
        stopped = stop(server)
    except BaseException:
        print(story())  # pytest shows it with the failure
        raise
    finally:
        if program.poll() is None:
            program.kill()
            program.wait()
        if server.poll() is None:
            stop(server)
    output = "\n".join(lines)
    print(output)  # shown by pytest -s
    assert code == 0, story()
    steps = [line.removeprefix("ok ") for line in lines if line.startswith("ok ")]
    expected = ["register login", "connect bind", "typed calls", "push", "errors timeout", "refresh", "chat"]
    assert steps == [*expected, "resume", "reconnect", "chat after reconnect"], output
    assert lines[-1] == "done"
    assert stopped == 0, story()
