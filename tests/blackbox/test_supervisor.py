"""deploy/supervisor/gameserver.conf under a real supervisord: a crashed server comes back, a stop is graceful.

The supervisord is the test's own (socket, pid file and logs in a tmp dir, in the foreground as the test's child) and
runs the shipped program section itself, with the deploy root /srv/gameserver replaced by a tmp dir and ``user=`` by
the test's user. That root is laid out as scripts/deploy lays it out, with this checkout's venv as the release's.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.blackbox.support import clean_env
from tests.integration.private_services import free_port

pytestmark = pytest.mark.blackbox

PROJECT = Path(__file__).resolve().parents[2]
SHIPPED = PROJECT / "deploy" / "supervisor" / "gameserver.conf"
SHIPPED_ROOT = "/srv/gameserver"
BIN = Path(sys.executable).parent  # supervisord and supervisorctl come with the test extra
WAIT = 30.0  # seconds any one step may take before the test fails
POLL = 0.1


def program_section(root: Path) -> str:
    """The shipped program section for a deploy root of ``root``, run as the test's user."""
    text = SHIPPED.read_text()
    assert SHIPPED_ROOT in text and re.search(r"^user=gameserver$", text, re.M), "the shipped file changed its layout"
    text = text.replace(SHIPPED_ROOT, str(root))
    return re.sub(r"^user=gameserver$", f"user={getpass.getuser()}", text, flags=re.M)


def production_config(http_port: int, **settings: str) -> str:
    """A shared/config.toml whose [profiles.production] (the profile the shipped command runs) listens on
    ``http_port`` for /healthz and on free ports otherwise; ``settings`` add lines to [server]."""
    server = "".join(f"{key} = {value}\n" for key, value in {"shutdown_grace": "2.0", **settings}.items())
    return (
        f"[server]\n{server}"
        "[profiles.production]\n"
        f"http = {{ port = {http_port} }}\n"
        "gate = { tcp_port = 0, ws_port = 0 }\n"
        "chat = { tcp_port = 0 }\n"
    )


class Supervisord:
    """A private supervisord running the shipped program section for the deploy root ``root``.

    ``ctl`` is its supervisorctl (``ctl_command`` the same as one shell word list, for SUPERVISORCTL).
    """

    def __init__(self, home: Path, root: Path, env: Mapping[str, str]) -> None:
        self.home = home
        self.root = root
        self.env = dict(env)
        self.conf = home / "supervisord.conf"
        self.log = home / "supervisord.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.children: set[int] = set()

    @property
    def ctl_command(self) -> list[str]:
        return [str(BIN / "supervisorctl"), "-c", str(self.conf)]

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "gameserver.conf").write_text(program_section(self.root))
        self.conf.write_text(
            f"[unix_http_server]\nfile={self.home}/supervisor.sock\n"
            f"[supervisord]\nlogfile={self.log}\npidfile={self.home}/supervisord.pid\nchildlogdir={self.home}\n"
            "nodaemon=true\nloglevel=info\n"
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
            f"[supervisorctl]\nserverurl=unix://{self.home}/supervisor.sock\n"
            "[include]\nfiles = gameserver.conf\n"
        )
        with open(self.home / "supervisord.out", "wb") as out:
            self.process = subprocess.Popen(
                [str(BIN / "supervisord"), "-c", str(self.conf)], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        wait_for(lambda: self.ctl("pid").returncode == 0, "supervisord to answer on its socket")

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.ctl_command, *args], env=self.env, capture_output=True, text=True, timeout=WAIT + 30
        )

    def state(self) -> str:
        return self.ctl("status", "gameserver").stdout.split()[1]

    def pid(self) -> int:
        """The server's PID while supervisord has one running, else 0."""
        pid = int(self.ctl("pid", "gameserver").stdout.strip() or 0)
        if pid:
            self.children.add(pid)
        return pid

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # supervisord stops its program as it would on shutdown, then exits
            try:
                self.process.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in self.children:  # whatever a failed test left behind, if that PID is still our server
            try:
                if str(self.root) in Path(f"/proc/{pid}/cmdline").read_text():
                    os.kill(pid, signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError):
                pass


def wait_for(ready: Any, what: str, timeout: float = WAIT) -> Any:
    """Call ``ready()`` until it returns something true, and return that; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = ready()
        if result:
            return result
        time.sleep(POLL)
    pytest.fail(f"timed out waiting for {what}")


def healthz(port: int) -> dict[str, Any] | None:
    """``GET /healthz`` on 127.0.0.1:``port`` if it answers 200, else None."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            body: dict[str, Any] = json.load(response)
            return body
    except (OSError, ValueError):
        return None


def healthy_pid(port: int, pid: int) -> bool:
    """Whether the server answering healthy on ``port`` is the process ``pid`` (its node is hostname-pid)."""
    body = healthz(port)
    return body is not None and body["node"].endswith(f"-{pid}")


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """A deploy root whose current release is this checkout's venv, with a production config."""
    root = tmp_path / "srv"
    release = root / "releases" / "dev"
    (release / "var").mkdir(parents=True)
    (root / "shared" / "log").mkdir(parents=True)
    (release / "venv").symlink_to(sys.prefix)
    (root / "current").symlink_to("releases/dev")
    yield root


def test_a_killed_server_is_restarted_and_a_stop_is_graceful(root: Path, tmp_path: Path) -> None:
    port = free_port()
    (root / "current" / "config.toml").write_text(production_config(port))
    supervisord = Supervisord(tmp_path / "supervisor", root, clean_env())
    try:
        supervisord.start()
        first = wait_for(supervisord.pid, "supervisord to start the server")
        wait_for(lambda: healthy_pid(port, first), "the server to answer /healthz")
        wait_for(lambda: supervisord.state() == "RUNNING", "startsecs to pass")

        os.kill(first, signal.SIGKILL)
        second = wait_for(lambda: (pid := supervisord.pid()) != first and pid, "supervisord to start it again")
        wait_for(lambda: healthy_pid(port, second), "the restarted server to answer /healthz")
        assert "exited: gameserver (terminated by SIGKILL; not expected)" in supervisord.log.read_text()

        stopped = supervisord.ctl("stop", "gameserver")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "gameserver: stopped" in stopped.stdout
        # exit status 0, not "terminated by SIGKILL": it drained and exited within stopwaitsecs
        assert "stopped: gameserver (exit status 0)" in supervisord.log.read_text()
        server_log = (root / "shared" / "log" / "gameserver.log").read_text()
        assert f"-{second} stopped" in server_log  # "node <host>-<pid> stopped", the server's last line
        assert server_log.count(" started: roles ") == 2
        assert healthz(port) is None
    finally:
        supervisord.stop()
