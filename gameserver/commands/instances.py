"""``gameserver instances start N | status | stop | restart NAME``: per-developer servers side by side on one box.

Instance ``devK`` is the one config template (``config.toml``) with these changes: every port + 1000*K,
``server.data_dir`` = ``<data_dir>/devK`` (the SQLite file, secrets and mail live there), ``node_id`` devK,
``log.file`` = ``<its data_dir>/server.log``, ``redis.prefix`` + ``devK:`` (one shared Redis, no shared keys),
and a MariaDB URL's database + ``_devK``. A ``[profiles.devK]`` section in the file overrides any of it.

Each instance runs as ``gameserver run`` in its own session (it outlives this command); its PID is kept in
``<data_dir>/gameserver.pid`` and what it prints before its log is open in ``<data_dir>/console.log``.
``stop`` sends SIGTERM to the PIDs in those files (after checking that they still are gameserver processes)
and waits for a graceful exit. ``restart devK --code DIR`` runs devK in DIR, a developer's pushed checkout
(``deploy/git/post-receive``), so that the template's relative module and game-data paths name their code.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gameserver import frozen
from gameserver.config import MAX_PORT, Config, load
from gameserver.errors import ConfigError

PORT_STEP = 1000
MAX_INSTANCES = 50
PID_FILE = "gameserver.pid"
CONSOLE_FILE = "console.log"
START_TIMEOUT = 30.0
POLL = 0.2


@dataclass
class Instance:
    name: str
    config: Config
    argv: list[str]  # the `gameserver run` arguments that give this config

    @property
    def pid_file(self) -> Path:
        return self.config.data_path / PID_FILE

    @property
    def console_file(self) -> Path:
        return self.config.data_path / CONSOLE_FILE

    def pid(self) -> int | None:
        """The PID of this instance's server if it is running, else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _is_gameserver(pid) else None

    def ports(self) -> dict[str, int]:
        return {name: value for name, value in _ports(dataclasses.asdict(self.config)).items() if value}

    def healthy(self) -> bool:
        port = self.config.http.port
        if not self.config.http.enabled or not port:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False


def instance(path: str | None, k: int) -> Instance:
    """Instance ``devK`` of the template ``path`` (default ./config.toml).

    Raises:
        ConfigError: the template, its profile or the derived values do not make a valid config.
    """
    if not 1 <= k <= MAX_INSTANCES:
        raise ConfigError(f"instances: numbers go from 1 to {MAX_INSTANCES}, got {k}")
    name = f"dev{k}"
    raw = _read(path)
    profiles = raw.get("profiles", {})
    profile = profiles.get(name, {}) if isinstance(profiles, dict) else {}
    base = load(path, env={})
    derived = {key: value for key, value in _derive(base, name, k).items() if not _sets(profile, key)}
    for key, value in derived.items():
        if key.endswith("port") and value > MAX_PORT:
            raise ConfigError(f"instances: {name} would listen on {key}={value} (the template's + {PORT_STEP}*{k})")
    template = Path(path or "config.toml").absolute()  # absolute: `restart --code` runs it in another folder
    argv = [
        *(["--config", str(template)] if path or template.is_file() else []),
        *(["--profile", name] if profile else []),
    ]
    argv += [f"--set={key}={_text(value)}" for key, value in derived.items()]
    config = load(path, profile=name if profile else "", env={}, overrides=derived)
    if not _sets(profile, "log.file"):
        log_file = str(config.data_path / "server.log")
        argv.append(f"--set=log.file={_text(log_file)}")
        config = config.replace(log={"file": log_file})
    return Instance(name, config, argv)


def _derive(base: Config, name: str, k: int) -> dict[str, Any]:
    # Absolute, so that an instance started in another working directory (`restart --code`) keeps its data here.
    data_dir = str((Path(base.server.data_dir) / name).absolute())
    derived: dict[str, Any] = {
        "server.data_dir": data_dir,
        "server.node_id": name,
        "redis.prefix": f"{base.redis.prefix}{name}:",
    }
    for key, port in _ports(dataclasses.asdict(base)).items():
        if port:  # 0 means "any free port" and stays so
            derived[key] = port + PORT_STEP * k
    if base.db.url and not base.db.url.startswith("sqlite"):
        url = urlsplit(base.db.url)
        derived["db.url"] = urlunsplit(url._replace(path=f"{url.path.rstrip('/') or '/game'}_{name}"))
    elif base.db.url:  # an explicit SQLite file: one per instance, in its data dir
        derived["db.url"] = f"sqlite+aiosqlite:///{Path(data_dir) / 'game.db'}"
    return derived


def _ports(config: dict[str, Any]) -> dict[str, int]:
    """Every port setting: ``section.port`` and ``section.*_port``."""
    found = {}
    for section, values in config.items():
        if isinstance(values, dict):
            for key, value in values.items():
                if (key == "port" or key.endswith("_port")) and isinstance(value, int):
                    found[f"{section}.{key}"] = value
    return found


def _read(path: str | None) -> dict[str, Any]:
    file = Path(path or "config.toml")
    if not file.is_file():
        if path:
            raise ConfigError(f"config file {path} does not exist")
        return {}
    try:
        return tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: {exc}") from None


def _sets(profile: dict[str, Any], dotted: str) -> bool:
    section, _, key = dotted.partition(".")
    values = profile.get(section)
    return isinstance(values, dict) and key in values


def _text(value: Any) -> str:
    """As ``--set`` takes it: read by the setting's type, so strings go as they are."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _is_gameserver(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) ``gameserver run`` process: a stale PID file may name another."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[0]
    return state != "Z" and any(b"gameserver" in part for part in cmdline) and b"run" in cmdline


def known(path: str | None) -> Iterator[Instance]:
    """The instances that have a profile in the template or a PID file on disk, in order."""
    profiles = _read(path).get("profiles", {})
    numbers = {int(name[3:]) for name in profiles if name.startswith("dev") and name[3:].isdigit()}
    base = Path(load(path, env={}).server.data_dir)
    numbers |= {int(p.parent.name[3:]) for p in base.glob(f"dev*/{PID_FILE}") if p.parent.name[3:].isdigit()}
    for k in sorted(n for n in numbers if 1 <= n <= MAX_INSTANCES):
        inst = instance(path, k)
        if f"dev{k}" in profiles or inst.pid_file.exists():
            yield inst


def start(path: str | None, count: int, *, timeout: float = START_TIMEOUT) -> int:
    """Start dev1..devN (those not running yet) and wait until each answers ``/healthz``."""
    started: list[tuple[Instance, subprocess.Popen[bytes]]] = []
    for k in range(1, count + 1):
        inst = instance(path, k)
        pid = inst.pid()
        if pid is not None:
            print(f"{inst.name}: already running (pid {pid})")
            continue
        started.append((inst, _spawn(inst, cwd=None)))
    failed = sum(not _wait_healthy(inst, process, time.monotonic() + timeout) for inst, process in started)
    status(path)
    return 1 if failed else 0


def restart(path: str | None, name: str, *, code: str | None = None, timeout: float = START_TIMEOUT) -> int:
    """Stop instance ``name`` if it runs, start it again and wait until it answers ``/healthz``.

    Args:
        code: the folder the instance runs in (a developer's pushed checkout, ``deploy/git/post-receive``): the
            template's relative paths, such as ``modules.paths`` and ``game.config``, then name that folder's files.
    """
    inst = instance(path, _number(name))
    if code is not None and not Path(code).is_dir():
        raise ConfigError(f"instances: --code {code} is not a folder")
    result = stop(path, [inst.name])
    process = _spawn(inst, cwd=code)
    if not _wait_healthy(inst, process, time.monotonic() + timeout):
        return 1
    print(f"{inst.name}: healthy (pid {process.pid}), ports {' '.join(f'{k}={v}' for k, v in inst.ports().items())}")
    return result


def _number(name: str) -> int:
    digits = name[3:] if name.startswith("dev") else name
    if not digits.isdigit():
        raise ConfigError(f"instances: {name} is not an instance name (dev1, dev2, ...)")
    return int(digits)


def _self_command() -> list[str]:
    """This program again: the interpreter with ``-m gameserver``, or the single executable itself."""
    return [sys.executable] if frozen.home() is not None else [sys.executable, "-m", "gameserver"]


def _spawn(inst: Instance, cwd: str | None) -> subprocess.Popen[bytes]:
    """``gameserver run`` for ``inst`` in its own session (it outlives this command), its PID in its PID file."""
    inst.config.data_path.mkdir(parents=True, exist_ok=True)
    with open(inst.console_file, "ab") as console:
        process = subprocess.Popen(
            [*_self_command(), "run", *inst.argv],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not stopped by this terminal's Ctrl-C; `instances stop` stops it
        )
    inst.pid_file.write_text(f"{process.pid}\n")
    return process


def _wait_healthy(inst: Instance, process: subprocess.Popen[bytes], deadline: float) -> bool:
    """Wait until ``inst`` answers ``/healthz``; False (said, with its console's last lines) if it exits or
    ``deadline`` passes first."""
    healthy = True
    while not inst.healthy():
        if process.poll() is not None or time.monotonic() > deadline:
            healthy = False
            why = f"exited with {process.returncode}" if process.returncode is not None else "not healthy in time"
            print(f"{inst.name}: {why}; see {inst.console_file} and {inst.config.log.file}", file=sys.stderr)
            print(_tail(inst.console_file), file=sys.stderr)
            break
        time.sleep(POLL)
    # It outlives this command on purpose: mark it so that Popen does not warn that it is still running.
    process.returncode = process.returncode or 0
    return healthy


def status(path: str | None) -> int:
    rows = [("NAME", "PID", "STATE", "PORTS", "DATA", "LOG")]
    for inst in known(path):
        pid = inst.pid()
        state = "stopped" if pid is None else "healthy" if inst.healthy() else "running"
        ports = " ".join(
            f"{key.replace('.port', '').replace('_port', '')}={port}" for key, port in inst.ports().items()
        )
        rows.append((inst.name, str(pid or "-"), state, ports, str(inst.config.data_path), inst.config.log.file or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def stop(path: str | None, names: list[str]) -> int:
    """SIGTERM the named instances (all when none is named) and wait for each to exit."""
    wanted = {f"dev{_number(name)}" for name in names}
    result = 0
    for inst in known(path):
        if wanted and inst.name not in wanted:
            continue
        pid = inst.pid()
        if pid is None:
            inst.pid_file.unlink(missing_ok=True)
            continue
        os.kill(pid, signal.SIGTERM)
        grace = inst.config.server.shutdown_grace + 5
        deadline = time.monotonic() + grace
        while _is_gameserver(pid) and time.monotonic() < deadline:
            time.sleep(POLL)
        if _is_gameserver(pid):
            print(f"{inst.name}: pid {pid} still running after {grace:g}s; sending SIGKILL", file=sys.stderr)
            os.kill(pid, signal.SIGKILL)
            result = 1
        inst.pid_file.unlink(missing_ok=True)
        print(f"{inst.name}: stopped (pid {pid})")
    return result


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
