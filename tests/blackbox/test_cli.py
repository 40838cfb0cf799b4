"""The `gameserver` command as an operator runs it: check-config, and the exit codes of run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.blackbox


def gameserver(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMESERVER_")}
    return subprocess.run(
        [sys.executable, "-m", "gameserver", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_check_config_prints_the_effective_config_with_secrets_masked(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[gate]\ntcp_port = 7000\n[profiles.x]\nhttp = { port = 7002 }\n")
    result = gameserver(
        tmp_path,
        "check-config",
        "--profile",
        "x",
        "--set",
        "db.url=mysql+asyncmy://root:hunter2@127.0.0.1:3306/game",
        "--set",
        "redis.url=redis://:s3cret@127.0.0.1:6379/0",
        "--ws-port",
        "7001",
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert (printed["source"], printed["profile"]) == ("config.toml", "x")
    assert (printed["gate"]["tcp_port"], printed["gate"]["ws_port"], printed["http"]["port"]) == (7000, 7001, 7002)
    assert printed["db"]["url"] == "***"
    assert printed["redis"]["url"] == "***"
    assert "hunter2" not in result.stdout and "s3cret" not in result.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check-config", "--set", "gate.tcp_port=abc"], "gate.tcp_port: expected an integer, got 'abc'"),
        (["check-config", "--set", "gate.tcp_portt=1"], "gate.tcp_portt: unknown key"),
        (["run", "--set", "log.level=loud"], "log.level: 'loud' is not one of debug, info, warning, error"),
        (["run", "--roles", "gate,cook"], "server.roles: 'cook' is not one of gate, chat, auth, worker"),
        (["run", "--profile", "nope"], "profile 'nope' is not in defaults (profiles: none)"),
    ],
)
def test_a_bad_config_exits_2_naming_the_key(tmp_path: Path, argv: list[str], message: str) -> None:
    result = gameserver(tmp_path, *argv)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_config_file_exits_2_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[worker]\nmax_inflight = 0\n")
    result = gameserver(tmp_path, "run")
    assert result.returncode == 2
    assert "worker.max_inflight: must be at least 1, got 0" in result.stderr


@pytest.mark.parametrize(
    ("flag", "listener", "setting"),
    [("--gate-port", "gate-tcp", "gate.tcp_port"), ("--http-port", "http", "http.port")],
)
def test_a_port_in_use_exits_1_naming_the_listener_and_the_flag(
    tmp_path: Path, flag: str, listener: str, setting: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"--gate-port": "0", "--ws-port": "0", "--http-port": "0", flag: str(port)}
        argv = [item for pair in ports.items() for item in pair]
        result = gameserver(tmp_path, "run", "--roles", "gate,auth,worker", *argv, "--data-dir", str(tmp_path / "var"))
    assert result.returncode == 1
    assert (
        f"cannot start: 127.0.0.1:{port}, the {listener} listener's port, is already in use (another gameserver?): "
        f"choose another with {flag} or --set {setting}=PORT"
    ) in result.stderr
    assert "Traceback" not in result.stderr
