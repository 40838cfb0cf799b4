"""The Node baseline of ``scripts/bench.py --baseline node``: Node's ``ws`` with ``msgpackr``, answering ``sys.echo``
with the gate's protocol (``scripts/node/echo.mjs``), so that both run under the same load in one run.

``ws`` and ``msgpackr`` come from the npm registry at the versions of ``scripts/node/package-lock.json``, installed
once with ``npm ci`` into a cache folder (``$XDG_CACHE_HOME/gameserver/bench-node``, default ``~/.cache/...``) and
installed again only when the lock file changes. Nothing is installed into the checkout.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from benchlib import ROOT, BenchError, ServerProcess

SOURCE = ROOT / "scripts" / "node"
FILES = ("package.json", "package-lock.json", "echo.mjs")
INSTALL_TIMEOUT = 300.0


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "gameserver" / "bench-node"


def missing() -> str | None:
    """Why the Node baseline cannot run here (no node or npm on PATH), or None."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: apt-get install nodejs npm)"
    return None


def versions() -> str:
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    lock = (SOURCE / "package-lock.json").read_text()
    ws = _locked(lock, "ws")
    msgpackr = _locked(lock, "msgpackr")
    return f"node {node}, ws {ws}, msgpackr {msgpackr}"


def _locked(lock: str, name: str) -> str:
    import json

    packages = json.loads(lock)["packages"]
    return str(packages.get(f"node_modules/{name}", {}).get("version", "?"))


def install() -> Path:
    """The cache folder with the echo server and its modules, installed (``npm ci``) if the lock file changed."""
    target = cache_dir()
    stamp = target / ".lock-sha256"
    digest = hashlib.sha256((SOURCE / "package-lock.json").read_bytes()).hexdigest()
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(SOURCE / name, target / name)
    if stamp.exists() and stamp.read_text() == digest and (target / "node_modules").is_dir():
        return target
    print(f"installing ws and msgpackr into {target} (npm ci)", flush=True)
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=target,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )
    if done.returncode != 0:
        raise BenchError(f"npm ci in {target} failed:\n{done.stdout[-1500:]}{done.stderr[-1500:]}")
    stamp.write_text(digest)
    return target


def start(workdir: Path, cpu: int | None) -> ServerProcess:
    folder = install()
    return ServerProcess("node", ["node", str(folder / "echo.mjs")], workdir, cpu, r"node ws=(?P<ws>\d+)")
