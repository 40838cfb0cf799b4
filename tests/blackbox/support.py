"""How the black-box tests start `gameserver` as an operator would: the command line and a clean environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

GAMESERVER = [sys.executable, "-m", "gameserver"]


def run_command(
    data_dir: Path, *extra: str, roles: str = "gate,auth,worker", gate: int = 0, ws: int = 0, http: int = 0
) -> list[str]:
    """`gameserver run` with its own data dir and the given ports (0: any free one, read from the ready line)."""
    ports = ["--gate-port", str(gate), "--ws-port", str(ws), "--http-port", str(http)]
    return [*GAMESERVER, "run", "--roles", roles, *ports, "--data-dir", str(data_dir), *extra]


def clean_env() -> dict[str, str]:
    """This process's environment without GAMESERVER_* variables, so a developer's settings can't leak in."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GAMESERVER_")}
