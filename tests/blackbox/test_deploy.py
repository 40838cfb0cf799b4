"""scripts/deploy in its local mode, end to end: a first deploy into an empty root, then deploys to a root served by
a real supervisord running the shipped program section (tests/blackbox/test_supervisor.py): a new release, a broken
one rolled back, and one refused by check-config. Then the same with the single executable (--binary) instead of a
wheel, run by a supervisord that sees no Python.

Cost: the real script installs each release's dependencies from the index. Here every release gets ``--pip-args
--no-deps`` (only the wheel goes into the release's venv) and the server finds the dependencies in this checkout's
venv through ``PYTHONPATH``: a folder of links to that venv's packages, all but the checkout's own ``gameserver``
distribution, so that the server runs the release's wheel (the test checks that) and pip does not take the
release's package for installed. The deploy's ``check-config`` and ``migrate`` import the modules, so the deploy
gets that ``PYTHONPATH`` too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.blackbox.support import clean_env
from tests.blackbox.test_supervisor import PROJECT, Supervisord, free_port, healthz, production_config, wait_for

pytestmark = pytest.mark.blackbox

DEPLOY = PROJECT / "scripts" / "deploy"
BROKEN_MODULE = "modules/zz_broken_on_purpose/__init__.py"


class Host:
    """A deploy root under a private supervisord, and ``deploy(...)`` running scripts/deploy into it."""

    def __init__(self, root: Path, supervisord: Supervisord, port: int, deps: str = "") -> None:
        self.deps = deps  # PYTHONPATH of the checkout's dependencies for a wheel's --no-deps venv; none for a binary
        self.root = root
        self.supervisord = supervisord
        self.port = port

    def deploy(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**clean_env(), "SUPERVISORCTL": " ".join(self.supervisord.ctl_command)}
        if self.deps:
            env["PYTHONPATH"] = self.deps
        argv = [str(DEPLOY), str(self.root), "--restart", "supervisor", "--timeout", "20"]
        argv += ["--python", sys.executable, "--pip-args", "--no-deps", *args]  # later options win
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    def current(self) -> str:
        return os.readlink(self.root / "current")

    def releases(self) -> list[str]:
        return sorted(path.name for path in (self.root / "releases").iterdir())

    def serving(self) -> tuple[int, str]:
        """The PID of the server supervisord runs and the release its interpreter comes from, once it answers
        /healthz as that PID."""
        pid = wait_for(self.supervisord.pid, "supervisord to run the server")
        wait_for(lambda: (body := healthz(self.port)) and body["node"].endswith(f"-{pid}"), "/healthz")
        interpreter = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        release = Path(interpreter).relative_to(self.root).parts[:2]  # releases/<name>/venv/bin/python
        return pid, "/".join(release)


def dependencies(folder: Path) -> str:
    """A folder of links to this venv's packages except the checkout's editable ``gameserver``."""
    folder.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(("gameserver", "__editable__")) and entry.suffix != ".pth":
            (folder / entry.name).symlink_to(entry)
    return str(folder)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    """An empty deploy root and a supervisord for it, not started yet; the server finds its dependencies through
    PYTHONPATH (see the module's docstring)."""
    root = tmp_path / "srv"
    deps = dependencies(tmp_path / "deps")
    env = {**clean_env(), "PYTHONPATH": deps}
    supervisord = Supervisord(tmp_path / "supervisor", root, env)
    try:
        yield Host(root, supervisord, free_port(), deps)
    finally:
        supervisord.stop()


def broken(wheel: Path, out: Path) -> Path:
    """``wheel`` plus a module package whose ``startup`` raises: it installs, passes check-config and migrate (which
    import the modules), but the server cannot start."""
    out.mkdir()
    path = out / wheel.name
    source = b'HANDLERS = {}\n\n\nasync def startup(resources):\n    raise RuntimeError("broken on purpose")\n'
    digest = base64.urlsafe_b64encode(hashlib.sha256(source).digest()).rstrip(b"=").decode()
    with zipfile.ZipFile(wheel) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                data += f"{BROKEN_MODULE},sha256={digest},{len(source)}\n".encode()
            zout.writestr(item, data)
        zout.writestr(BROKEN_MODULE, source)
    return path


@pytest.mark.timeout(240)  # ~30 s here idle, 110 s with load 8; four deploys (each migrates), one building a wheel
def test_deploy_lays_out_switches_and_rolls_back(host: Host, tmp_path: Path) -> None:
    root = host.root
    first = host.deploy("--restart", "none")  # into an empty root: builds the wheel, seeds shared/config.toml
    assert first.returncode == 0, first.stderr
    assert "not restarted (--restart none)" in first.stderr
    v0 = host.current()
    assert v0.startswith("releases/") and host.releases() == [v0.removeprefix("releases/")]
    assert (root / v0 / "game" / "items.toml").is_file()  # the checkout's game config ships with the release
    assert (root / v0 / "REVISION").read_text().startswith("commit ")
    config = root / "shared" / "config.toml"
    seeded = config.read_text()
    assert seeded.startswith((root / v0 / "config.default.toml").read_text())  # the checkout's config.toml
    assert seeded.endswith("[profiles.production]\n")  # an empty profile for this host's settings
    assert json.loads((root / v0 / "config.json").read_text())["profile"] == "production"
    (built,) = (root / v0).glob("gameserver-*.whl")
    wheel = tmp_path / built.name  # for the next deploys, which ship it instead of building again
    shutil.copy(built, wheel)
    again = host.deploy("--restart", "none", "--wheel", str(wheel), "--keep", "1")
    assert again.returncode == 0, again.stderr
    v0, replaced = host.current(), v0
    assert host.releases() == sorted(name.removeprefix("releases/") for name in (replaced, v0))  # may still run

    config.write_text(seeded + production_config(host.port).partition("[profiles.production]\n")[2])
    host.supervisord.start()  # runs v0 at once
    pid0, running = host.serving()
    assert running == v0
    imported = subprocess.run(
        [root / v0 / "venv" / "bin" / "python", "-c", "import gameserver; print(gameserver.__file__)"],
        env=host.supervisord.env,
        cwd=root / "current",  # as the server runs it: from the release's directory
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.startswith(str(root / v0 / "venv")), "the server must run the release's wheel"
    assert (root / v0 / "var").resolve() == (root / "shared" / "var").resolve()
    assert (root / "shared" / "var" / "game.db").exists()  # data_dir is shared, outside the release

    second = host.deploy("--wheel", str(wheel), "--keep", "1")
    assert second.returncode == 0, second.stderr
    v1 = host.current()
    assert v1 != v0
    pid1, running = host.serving()
    assert (pid1 != pid0, running) == (True, v1)
    assert host.releases() == [v1.removeprefix("releases/")]  # --keep 1: restarted, the replaced one goes too

    third = host.deploy("--wheel", str(broken(wheel, tmp_path / "broken")))
    assert third.returncode == 1, third.stderr
    assert "broken on purpose" in third.stderr  # the failed server's log is shown
    assert f"rolled back: current -> {v1}" in third.stderr
    assert host.current() == v1 and host.releases() == [v1.removeprefix("releases/")]
    pid2, running = host.serving()
    assert (pid2 != pid1, running) == (True, v1)  # the previous release, restarted

    config.write_text(config.read_text() + "bogus = 1\n")  # in [profiles.production]: an unknown section
    refused = host.deploy("--wheel", str(wheel))
    assert refused.returncode == 1
    assert "bogus: unknown section" in refused.stderr and "check-config failed" in refused.stderr
    assert host.current() == v1 and host.releases() == [v1.removeprefix("releases/")]
    assert host.serving() == (pid2, v1)  # not restarted


@pytest.fixture
def binary_host(tmp_path: Path) -> Iterator[Host]:
    """An empty deploy root and a supervisord whose programs see no Python of this checkout's: no venv on PATH, no
    PYTHONPATH."""
    root = tmp_path / "srv"
    env = {**clean_env(), "PATH": "/usr/bin:/bin"}
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(name, None)
    supervisord = Supervisord(tmp_path / "supervisor", root, env)
    try:
        yield Host(root, supervisord, free_port())
    finally:
        supervisord.stop()


def serving_executable(host: Host) -> tuple[int, str]:
    """The PID of the server (the executable's child: PyInstaller's bootloader is what supervisord started) once it
    answers /healthz, and the release whose executable the bootloader is."""
    bootloader = wait_for(host.supervisord.pid, "supervisord to run the server")
    body = wait_for(lambda: healthz(host.port), "/healthz")
    server = int(body["node"].rsplit("-", 1)[1])
    assert Path(f"/proc/{server}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(bootloader)  # its parent
    executable = Path(os.readlink(f"/proc/{bootloader}/exe"))
    assert executable.name == "gameserver"
    return server, "/".join(executable.relative_to(host.root).parts[:2])  # releases/<name>/gameserver


@pytest.mark.timeout(900)  # ~15 s here once the executable is built; building it (once a session) takes 1-3 min
def test_deploy_ships_the_single_executable(binary_host: Host, gameserver_binary: Path) -> None:
    host, root = binary_host, binary_host.root
    first = host.deploy("--binary", str(gameserver_binary), "--restart", "none")
    assert first.returncode == 0, first.stderr
    v0 = host.current()
    assert (root / v0 / "gameserver").is_file() and not list((root / v0).glob("*.whl"))
    assert os.readlink(root / v0 / "venv" / "bin" / "gameserver") == "../../gameserver"  # what the service runs
    assert not (root / v0 / "venv" / "bin" / "python").exists()  # nothing installed: no Python needed
    assert (root / v0 / "REVISION").read_text().startswith("executable gameserver (gameserver 0.1.0, --binary)")
    assert json.loads((root / v0 / "config.json").read_text())["profile"] == "production"
    config = root / "shared" / "config.toml"
    config.write_text(config.read_text() + production_config(host.port).partition("[profiles.production]\n")[2])

    host.supervisord.start()
    pid0, running = serving_executable(host)
    assert running == v0
    assert (root / "shared" / "var" / "game.db").exists()  # data_dir "var" in the release: the shared one

    second = host.deploy("--binary", str(gameserver_binary), "--keep", "1")
    assert second.returncode == 0, second.stderr
    assert "healthy, node" in second.stderr
    v1 = host.current()
    pid1, running = serving_executable(host)
    assert (v1 != v0, pid1 != pid0, running) == (True, True, v1)
    assert host.releases() == [v1.removeprefix("releases/")]

    both = host.deploy("--binary", str(gameserver_binary), "--wheel", str(gameserver_binary))
    assert both.returncode == 1 and "ship one or the other" in both.stderr
