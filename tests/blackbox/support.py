"""How the black-box tests start `gameserver` as an operator would: the command line and a clean environment."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

GAMESERVER = [sys.executable, "-m", "gameserver"]
READY = re.compile(r"^gameserver \S+ node \S+: (.*)$", re.MULTILINE)  # logged once every listener accepts: its ports
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


def run_command(
    data_dir: Path, *extra: str, roles: str = "gate,auth,worker", gate: int = 0, ws: int = 0, http: int = 0
) -> list[str]:
    """`gameserver run` with its own data dir and the given ports (0: any free one, read from the ready line)."""
    ports = ["--gate-port", str(gate), "--ws-port", str(ws), "--http-port", str(http)]
    return [*GAMESERVER, "run", "--roles", roles, *ports, "--data-dir", str(data_dir), *extra]


def clean_env() -> dict[str, str]:
    """This process's environment without GAMESERVER_* variables, so a developer's settings can't leak in."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GAMESERVER_")}


def start_logged(
    command: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    """Start ``command`` (a `gameserver run`) with its output in ``log``; once it logged its ready line, the
    process and its ports by listener name (``gate-tcp``, ``ws``, ``http``, ...)."""
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=out, env=clean_env() if env is None else env)
    deadline = time.monotonic() + START_TIMEOUT
    while not (match := READY.search(log.read_text(errors="replace"))):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise AssertionError(f"gameserver did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.02)  # waiting for the line; nothing asserts on elapsed time
    ports = {name: int(port) for name, _, port in (item.partition("=") for item in match.group(1).strip().split(", "))}
    return process, ports


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM by PID; its exit code (SIGKILL, and a failure, past ``STOP_TIMEOUT``)."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        raise
