"""A process on the embedded defaults imports only what its backends need (issue 18: resting memory).

The app runs in a fresh interpreter (this one has long imported the test clients), every role on SQLite and the
in-process Redis; what it imported is then compared with what it must not need.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import asyncio, json, sys
from gameserver.app import App
from gameserver.config import load

async def main():
    overrides = {"server.data_dir": sys.argv[1], "gate.tcp_port": 0, "gate.ws_port": 0, "http.port": 0,
                 "chat.tcp_port": 0}
    app = App(load(None, env={}, overrides=overrides))
    await app.start()
    await app.stop()

asyncio.run(main())
print(json.dumps(sorted(sys.modules)))
"""

NOT_ON_EMBEDDED_DEFAULTS = {
    # Not sqlalchemy.dialects.mysql (0.7 MiB): tables in modules/ name mysql_engine=..., and SQLAlchemy loads
    # a dialect to check the keywords named after it; modules/inventory uses its INSERT ... ON DUPLICATE KEY.
    "asyncmy": "the MariaDB driver",
    "nats": "the NATS bus: bus.backend is local",
    "websockets.server": "websockets' handshake: the upgrade is gameserver.protocol.handshake",
    "websockets.http11": "websockets' HTTP parser",
    "websockets.asyncio": "websockets' client and server: only the CLI client needs them",
    "gameserver.sdk": "the SDK generators: a CLI command",
    "gameserver.commands": "the CLI's client commands",
}


def test_an_embedded_all_roles_app_imports_no_backend_it_does_not_use(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "var")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    imported = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "sqlalchemy.dialects.sqlite" in imported and "fakeredis" in imported  # it did run on the defaults
    wrong = {name: why for name, why in NOT_ON_EMBEDDED_DEFAULTS.items() if name in imported}
    assert wrong == {}
