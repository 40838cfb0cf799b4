"""The single executable, built once per session by scripts/build-binary (or taken from the CI cache)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.blackbox.support import clean_env
from tests.conftest import IN_CI

PROJECT = Path(__file__).resolve().parents[2]
BUILD = PROJECT / "scripts" / "build-binary"
# Outside the checkout, so that a second CI run on this machine reuses a build of the same sources; a fresh machine
# builds. The key covers everything the executable is made of: the sources it packs, the spec, the installed
# distributions and the interpreter.
CACHE = Path(os.environ.get("GAMESERVER_CI_CACHE", "/var/cache/gameserver-ci"))
SOURCES = ("gameserver", "modules", "enums", "deploy/binary", "setup.cfg")


def binary_key() -> str:
    digest = hashlib.sha256(sys.version.encode())
    for source in SOURCES:
        root = PROJECT / source
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(PROJECT)).encode() + b"\0" + path.read_bytes())
    freeze = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"], capture_output=True, check=True
    )
    digest.update(freeze.stdout)
    return digest.hexdigest()[:24]


def require_pyinstaller() -> None:
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        message = "PyInstaller is not installed in this venv (scripts/install installs the test extra, which has it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def gameserver_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist/gameserver as scripts/build-binary makes it, in a folder of its own (copy it before use)."""
    require_pyinstaller()
    key = binary_key()
    cached = CACHE / "binary" / key / "gameserver"
    if cached.is_file():
        return cached
    out = tmp_path_factory.mktemp("binary") / "gameserver"
    built = subprocess.run([str(BUILD), "--out", str(out)], env=clean_env(), capture_output=True, text=True)
    assert built.returncode == 0, f"scripts/build-binary failed:\n{built.stdout}\n{built.stderr}"
    print("\n".join(built.stderr.splitlines()[-4:]))  # the build time, size and start-up times, in the test log
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}")
        shutil.copy2(out, partial)
        os.replace(partial, cached)  # whole or absent, should two runs race
        for old in cached.parent.parent.iterdir():  # one build kept: they are ~30 MB each
            if old != cached.parent:
                shutil.rmtree(old, ignore_errors=True)
    except OSError:
        pass  # no cache here (not root): built again next session
    return out
