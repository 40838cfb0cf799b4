"""`gameserver run` when its database or Redis cannot be reached (docs/storage.md, "Start-up and recovery"):
unreachable backends start a node that reports 503; a database that refuses stops start-up with exit 2."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.blackbox.support import GAMESERVER, clean_env
from tests.integration.private_services import free_port

pytestmark = pytest.mark.blackbox

START_TIMEOUT = 30.0


def run(tmp: Path, *settings: str) -> tuple[subprocess.Popen[bytes], int]:
    http = free_port()
    command = [*GAMESERVER, "run", "--data-dir", str(tmp / "var"), "--http-port", str(http)]
    for port_setting in ("gate.tcp_port", "gate.ws_port", "chat.tcp_port"):
        command += ["--set", f"{port_setting}=0"]
    for setting in settings:
        command += ["--set", setting]
    with open(tmp / "server.log", "wb") as out:
        process = subprocess.Popen(command, cwd=tmp, stdout=out, stderr=subprocess.STDOUT, env=clean_env())
    return process, http


def health(http: int) -> tuple[int, dict[str, Any]] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return None  # not listening yet


def test_unreachable_backends_start_a_node_that_reports_503(tmp_path: Path) -> None:
    db_port, redis_port = free_port(), free_port()
    process, http = run(
        tmp_path,
        f"db.url=mysql+asyncmy://root@127.0.0.1:{db_port}/game",
        f"redis.url=redis://127.0.0.1:{redis_port}/0",
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        answer = None
        while answer is None:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "no /healthz answer"
            time.sleep(0.05)
            answer = health(http)
        status, body = answer
        assert (status, body["status"]) == (503, "unhealthy")
        assert body["checks"]["db"].startswith(f"mysql 127.0.0.1:{db_port}/game: unreachable: OperationalError: (2003")
        assert body["checks"]["redis"].startswith(f"redis 127.0.0.1:{redis_port}/0: ConnectionError: ")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_database_that_refuses_exits_2(tmp_path: Path) -> None:
    process, _ = run(tmp_path, f"db.url=sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'game.db'}")
    try:
        assert process.wait(timeout=30) == 2
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "config error: db.url: cannot prepare the schema" in (tmp_path / "server.log").read_text()
