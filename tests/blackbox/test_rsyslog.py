"""Seed 000's logs that a developer reads without access to the server: `gameserver run` with ``log.syslog`` sends
its lines to a real rsyslogd running the shipped deploy/rsyslog/gameserver.conf, which files them per node.

rsyslogd runs in the foreground with its own config, work directory and pid file in a tmp dir, on a free UDP port
(the shipped file's port 514 and /var/log/gameserver are the only lines replaced).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.blackbox.support import run_command, start_logged, stop
from tests.conftest import IN_CI

pytestmark = pytest.mark.blackbox

CONF = Path(__file__).resolve().parents[2] / "deploy" / "rsyslog" / "gameserver.conf"
RSYSLOGD = "/usr/sbin/rsyslogd"
DEADLINE = 20.0


def require_rsyslogd() -> None:
    if os.path.exists(RSYSLOGD):
        return
    message = "rsyslogd is not installed (apt-get install rsyslog; scripts/services does in CI)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def render(port: int, logs: Path, work: Path) -> str:
    """The shipped file for this test: its own port and log directory, a private work directory."""
    text = CONF.read_text()
    for old, new in [
        ('input(type="imudp" port="514")', f'input(type="imudp" port="{port}" address="127.0.0.1")'),
        ('string="/var/log/gameserver/', f'string="{logs}/'),
    ]:
        assert text.count(old) == 1, f"deploy/rsyslog/gameserver.conf no longer has {old!r} exactly once"
        text = text.replace(old, new)
    return f'global(workDirectory="{work}")\n' + text


def wait_for(path: Path, text: str, process: subprocess.Popen[bytes], about: Path) -> str:
    deadline = time.monotonic() + DEADLINE
    while True:
        content = path.read_text(errors="replace") if path.exists() else ""
        if text in content:
            return content
        assert process.poll() is None, about.read_text(errors="replace")
        assert time.monotonic() < deadline, f"{text!r} not in {path}:\n{content}\n{about.read_text(errors='replace')}"
        time.sleep(0.05)  # waiting for the file; nothing asserts on elapsed time


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A private rsyslogd running the shipped config: its UDP port and the directory it files the logs in."""
    require_rsyslogd()
    port, logs, work = free_udp_port(), tmp_path / "logs", tmp_path / "work"
    work.mkdir()
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(render(port, logs, work))
    check = subprocess.run([RSYSLOGD, "-N1", "-f", str(conf)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr  # the shipped file is valid rsyslog
    out = tmp_path / "rsyslogd.out"
    with open(out, "wb") as sink:
        command = [RSYSLOGD, "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslogd.pid")]
        process = subprocess.Popen(command, stdout=sink, stderr=sink)
    try:
        # rsyslogd has no ready line; its own start message, filed nowhere here, is not one either: probe the
        # input with a test line until it lands.
        probe = logs / "gameserver-probe.log"
        deadline = time.monotonic() + DEADLINE
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            while not probe.exists():
                assert process.poll() is None, out.read_text(errors="replace")
                assert time.monotonic() < deadline, f"rsyslogd did not file a line:\n{out.read_text(errors='replace')}"
                sock.sendto(b"<14>gameserver-probe: probe", ("127.0.0.1", port))
                time.sleep(0.1)
        yield port, logs
    finally:
        stop(process)


def test_each_node_gets_its_own_file_on_the_log_host(rsyslog: tuple[int, Path], tmp_path: Path) -> None:
    port, logs = rsyslog
    servers = []
    for node in ("dev1", "dev2"):
        settings = ["--set", f"log.syslog=udp://127.0.0.1:{port}", "--set", f"server.node_id={node}"]
        (tmp_path / node).mkdir()
        process, ports = start_logged(
            run_command(tmp_path / node / "var", *settings), tmp_path / node, tmp_path / node / "out.log"
        )
        servers.append((node, process, ports))
    for node, process, ports in servers:
        assert stop(process) == 0
        content = wait_for(
            logs / f"gameserver-{node}.log", f"node {node} stopped", process, tmp_path / node / "out.log"
        )
        assert f"node {node} started" in content
        other = "dev2" if node == "dev1" else "dev1"
        assert f"node {other}" not in content  # one file per node: a developer reads their own instance
