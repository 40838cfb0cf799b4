"""The shipped deploy/ files agree with the server and with scripts/deploy; the systemd unit passes
``systemd-analyze verify``; scripts/deploy refuses bad arguments before it touches anything."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gameserver.config import Config, load

PROJECT = Path(__file__).resolve().parents[2]
SUPERVISOR = PROJECT / "deploy" / "supervisor" / "gameserver.conf"
SYSTEMD = PROJECT / "deploy" / "systemd" / "gameserver.service"
DEPLOY = PROJECT / "scripts" / "deploy"
SHIPPED_ROOT = "/srv/gameserver"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def ini(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(comment_prefixes=(";", "#"), strict=True)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(s|min)?", value)
    assert match, value
    return float(match[1]) * (60 if match[2] == "min" else 1)


def graces() -> list[float]:
    """server.shutdown_grace as built in and as the shipped config.toml sets it."""
    return [Config().server.shutdown_grace, load(PROJECT / "config.toml", env={}).server.shutdown_grace]


def deploy_default_profile() -> str:
    match = re.search(r"^profile=(\S+)$", DEPLOY.read_text(), re.M)
    assert match, "scripts/deploy sets its default profile on a line of its own"
    return match[1]


def test_supervisor_waits_longer_than_the_graceful_shutdown() -> None:
    program = ini(SUPERVISOR)["program:gameserver"]
    assert program["stopsignal"] == "TERM"
    assert all(float(program["stopwaitsecs"]) > grace for grace in graces())
    assert program["autorestart"] == "true"
    assert int(program["startsecs"]) > 0
    assert program["stdout_logfile"].startswith(f"{SHIPPED_ROOT}/shared/log/")


def test_systemd_waits_longer_than_the_graceful_shutdown() -> None:
    service = ini(SYSTEMD)["Service"]
    assert service["KillSignal"] == "SIGTERM"
    assert all(seconds(service["TimeoutStopSec"]) > grace for grace in graces())
    assert service["Restart"] == "on-failure"


def test_systemd_has_descriptors_for_every_listener_full() -> None:
    config = Config()
    # the gate's TCP and WebSocket listeners, chat TCP, HTTP: each may hold its max_connections at once
    connections = 2 * config.gate.max_connections + config.chat.max_connections + config.http.max_connections
    assert int(ini(SYSTEMD)["Service"]["LimitNOFILE"]) > connections


def test_both_managers_run_the_release_deploy_lays_out() -> None:
    program = ini(SUPERVISOR)["program:gameserver"]
    service = ini(SYSTEMD)["Service"]
    assert program["command"] == service["ExecStart"]
    assert program["directory"] == service["WorkingDirectory"] == f"{SHIPPED_ROOT}/current"
    argv = shlex.split(program["command"])
    assert argv[:2] == [f"{SHIPPED_ROOT}/current/venv/bin/gameserver", "run"]
    assert argv[argv.index("--config") + 1] == "config.toml"  # the release's link to shared/config.toml
    assert argv[argv.index("--profile") + 1] == deploy_default_profile()  # what scripts/deploy checks by default
    # the data dir (config.toml's relative "var", the release's link to shared/var) is all the unit may write
    assert service["ReadWritePaths"] == f"{SHIPPED_ROOT}/shared/var"
    assert load(PROJECT / "config.toml", env={}).server.data_dir == "var"


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        message = "systemd-analyze is not installed (Debian: apt-get install systemd)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    # verify checks that ExecStart exists: lay out a root whose current release is this checkout's venv
    root = tmp_path / "srv"
    (root / "releases" / "dev").mkdir(parents=True)
    (root / "shared" / "var").mkdir(parents=True)
    (root / "releases" / "dev" / "venv").symlink_to(sys.prefix)
    (root / "current").symlink_to("releases/dev")
    unit = tmp_path / "gameserver.service"
    unit.write_text(SYSTEMD.read_text().replace(SHIPPED_ROOT, str(root)))

    result = verify(unit)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")

    # and it does complain: a misspelt key, a missing binary
    unit.write_text(SYSTEMD.read_text().replace(SHIPPED_ROOT, str(root)).replace("KillSignal=", "KillSignall="))
    assert "Unknown key" in verify(unit).stderr
    (root / "current").unlink()
    assert "is not executable" in verify(unit).stderr


def deploy(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DEPLOY), *argv], cwd=cwd, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        ([], 2, "scripts/deploy [user@host:]/srv/gameserver"),
        (["srv", "--restart", "upstart"], 1, "--restart: expected supervisor, systemd or none, got upstart"),
        (["srv", "--keep", "0"], 1, "--keep: expected a number of releases >= 1, got 0"),
        (["srv", "--timeout", "soon"], 1, "--timeout: expected seconds, got soon"),
        (["srv", "--wheel", "nope.whl"], 1, "--wheel: nope.whl is not a file"),
        (["srv", "--frobnicate"], 2, "unknown option --frobnicate"),
        (["srv", "other"], 2, "scripts/deploy [user@host:]/srv/gameserver"),
    ],
)
def test_deploy_refuses_bad_arguments_before_doing_anything(
    tmp_path: Path, argv: list[str], code: int, message: str
) -> None:
    result = deploy(*argv, cwd=tmp_path)
    assert (result.returncode, message in result.stderr) == (code, True), result.stderr
    assert list(tmp_path.iterdir()) == []
