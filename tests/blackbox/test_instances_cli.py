"""``gameserver instances start N | status | stop``: real processes side by side from one config template."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gameserver.commands.instances import PORT_STEP, _is_gameserver, instance

pytestmark = pytest.mark.blackbox

PORTS = ("gate.tcp_port", "gate.ws_port", "chat.tcp_port", "http.port")


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ephemeral_start() -> int:
    """The first port the kernel hands out to outgoing connections: ports below it are not taken by them."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_base(instances: int) -> int:
    """A base port whose four ports, shifted by 1000 for each instance, are all free now, and below the ephemeral
    range, so that no outgoing connection (of another test, say) takes one before the instance binds it."""
    top = min(ephemeral_start(), 60000) - PORT_STEP * instances - len(PORTS)
    for _ in range(50):
        base = random.randrange(10000, top, 10)
        if all(bindable(base + i + PORT_STEP * k) for i in range(len(PORTS)) for k in range(1, instances + 1)):
            return base
    raise RuntimeError("no free port range found")


def gameserver(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMESERVER_")}
    return subprocess.run(
        [sys.executable, "-m", "gameserver", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def template(tmp_path: Path) -> Iterator[Path]:
    base = free_base(2)
    path = tmp_path / "config.toml"
    ports = {key: base + i for i, key in enumerate(PORTS)}
    sections: dict[str, list[str]] = {}
    for key, port in ports.items():
        section, _, name = key.partition(".")
        sections.setdefault(section, []).append(f"{name} = {port}")
    sections["server"] = [f'data_dir = "{tmp_path / "var"}"', "shutdown_grace = 2.0"]
    sections["game"] = ['config = ""']
    path.write_text("".join(f"[{name}]\n" + "\n".join(lines) + "\n" for name, lines in sections.items()))
    yield path
    gameserver("instances", "--config", str(path), "stop", cwd=tmp_path)  # whatever a failed test left running


def test_start_status_stop(template: Path, tmp_path: Path) -> None:
    started = gameserver("instances", "--config", str(template), "start", "2", cwd=tmp_path)
    assert started.returncode == 0, started.stdout + started.stderr
    one, two = instance(str(template), 1), instance(str(template), 2)
    pids = [one.pid(), two.pid()]
    assert all(pids), started.stdout
    assert one.config.http.port != two.config.http.port
    for inst in (one, two):
        assert inst.healthy()
        assert f"node {inst.name} started" in Path(inst.config.log.file).read_text()

    status = gameserver("instances", "--config", str(template), "status", cwd=tmp_path)
    rows = {line.split()[0]: line.split() for line in status.stdout.splitlines()[1:]}
    assert rows["dev1"][1:3] == [str(pids[0]), "healthy"]
    assert rows["dev2"][1:3] == [str(pids[1]), "healthy"]
    assert f"http={two.config.http.port}" in status.stdout

    again = gameserver("instances", "--config", str(template), "start", "2", cwd=tmp_path)
    assert f"dev1: already running (pid {pids[0]})" in again.stdout

    stopped = gameserver("instances", "--config", str(template), "stop", "dev1", cwd=tmp_path)
    assert stopped.returncode == 0 and f"dev1: stopped (pid {pids[0]})" in stopped.stdout
    assert not _is_gameserver(pids[0]) and two.healthy()
    assert "node dev1 stopped" in Path(one.config.log.file).read_text()

    stopped = gameserver("instances", "--config", str(template), "stop", cwd=tmp_path)
    assert f"dev2: stopped (pid {pids[1]})" in stopped.stdout
    assert not _is_gameserver(pids[1])
    status = gameserver("instances", "--config", str(template), "status", cwd=tmp_path)
    assert status.stdout.splitlines()[1:] == []  # no profiles in this template and no PID files left


def test_a_stale_pid_file_is_not_trusted(template: Path, tmp_path: Path) -> None:
    one = instance(str(template), 1)
    one.config.data_path.mkdir(parents=True)
    one.pid_file.write_text(f"{os.getpid()}\n")  # a live process, but not a gameserver
    assert one.pid() is None
    status = gameserver("instances", "--config", str(template), "status", cwd=tmp_path)
    assert status.stdout.splitlines()[1].split()[1:3] == ["-", "stopped"]
    stopped = gameserver("instances", "--config", str(template), "stop", cwd=tmp_path)
    assert stopped.returncode == 0 and not one.pid_file.exists()


def test_a_failed_start_says_why(template: Path, tmp_path: Path) -> None:
    one = instance(str(template), 1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", one.config.http.port))
        taken.listen()
        result = gameserver("instances", "--config", str(template), "start", "1", cwd=tmp_path)
    assert result.returncode == 1
    assert "dev1: exited with" in result.stderr
