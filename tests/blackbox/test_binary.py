"""The single executable (scripts/build-binary): copied alone into an empty folder, run from a PATH without Python's
venv, with a game module and a config.toml beside it, and every subcommand run as an operator would."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.blackbox.support import start_logged, stop
from tests.clients import TcpClient, WsClient
from tests.conftest import delete_prefixed, new_prefix

pytestmark = [pytest.mark.blackbox, pytest.mark.timeout(900)]  # the first test builds the executable (1-3 min)

GREET = {
    # imports its sibling as modules.greet.handlers: a package beside the executable joins the shipped ones
    "__init__.py": "from gameserver.dispatch.registry import handler\nfrom modules.greet.handlers import hello\n\n"
    'HANDLERS = {"hello": handler(hello, login=False)}\n',
    "handlers.py": 'async def hello(name: str, **_: object) -> dict[str, str]:\n    return {"text": f"hello {name}"}\n',
}
BESIDE_CONFIG = '[server]\nnode_id = "beside"\n\n[log]\nlevel = "info"\n'


def operator_env(folder: Path, home: Path) -> dict[str, str]:
    """What a host without Python has: the executable's folder and the system's on PATH, nothing of the venv."""
    return {"PATH": f"{folder}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}


def gameserver(env: dict[str, str], cwd: Path, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["gameserver", *argv], env=env, cwd=cwd, input=stdin, capture_output=True, text=True)


def healthz(port: int) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        return json.load(response)


async def test_the_executable_alone_runs_every_command(gameserver_binary: Path, tmp_path: Path, redis_url: str) -> None:
    folder = tmp_path / "opt"  # where the operator put it: the executable, then the studio's files
    folder.mkdir()
    shutil.copy2(gameserver_binary, folder / "gameserver")
    assert [p.name for p in folder.iterdir()] == ["gameserver"]
    elsewhere = tmp_path / "cwd"  # the working directory: empty, so that everything found is found beside it
    elsewhere.mkdir()
    env = operator_env(folder, tmp_path)
    assert shutil.which("python3", path=env["PATH"]) in (None, "/usr/bin/python3")  # not the venv's

    version = gameserver(env, elsewhere, "--version")
    assert version.returncode == 0 and version.stdout.startswith("gameserver "), version.stderr
    defaults = gameserver(env, elsewhere, "check-config")
    assert defaults.returncode == 0, defaults.stderr
    effective = json.loads(defaults.stdout)
    assert effective["source"] == "defaults"  # nothing configured: the embedded defaults
    assert effective["server"]["data_dir"] == str(folder / "var")  # beside the executable, not in the cwd
    assert effective["game"]["config"] == str(folder / "game")
    enums = gameserver(env, elsewhere, "enums", "export", "--format", "lua")
    assert enums.returncode == 0 and "local enums = {}" in enums.stdout, enums.stderr
    sdk = gameserver(env, elsewhere, "sdk", "typescript", "--out", "generated")
    assert sdk.returncode == 0, sdk.stderr
    assert (elsewhere / "generated" / "api.ts").is_file(), sdk.stdout

    (folder / "config.toml").write_text(BESIDE_CONFIG)
    for name, text in GREET.items():
        (folder / "modules" / "greet").mkdir(parents=True, exist_ok=True)
        (folder / "modules" / "greet" / name).write_text(text)
    configured = gameserver(env, elsewhere, "check-config")
    assert json.loads(configured.stdout)["source"] == str(folder / "config.toml"), configured.stderr
    # the core's and the shipped modules' migrations travel inside the executable as files Alembic can run
    migrated = gameserver(env, elsewhere, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    check = gameserver(env, elsewhere, "migrate", "--check")
    assert check.returncode == 0, check.stdout + check.stderr

    prefix = new_prefix()
    registry = ["--set", f"redis.url={redis_url}", "--set", f"redis.prefix={prefix}"]
    ports = ["--gate-port", "0", "--ws-port", "0", "--chat-port", "0", "--http-port", "0"]
    command = ["gameserver", "run", *ports, *registry]
    server, bound = start_logged(command, elsewhere, tmp_path / "server.log", env=env)
    try:
        assert healthz(bound["http"])["node"] == "beside"  # config.toml beside the executable
        with urllib.request.urlopen(f"http://127.0.0.1:{bound['http']}/", timeout=5) as response:
            assert b"</html>" in response.read()  # the console's static files are inside
        tcp = await TcpClient.open(bound["gate-tcp"])
        assert await tcp.call("sys.echo", {"over": "tcp"}) == {"id": 1, "ok": True, "data": {"over": "tcp"}}
        assert (await tcp.call("greet.hello", {"name": "ada"}))["data"] == {"text": "hello ada"}
        await tcp.close()
        ws = await WsClient.open(bound["ws"])
        assert await ws.call("sys.echo", {"over": "ws"}) == {"id": 1, "ok": True, "data": {"over": "ws"}}
        await ws.close()
        assert (folder / "var" / "game.db").is_file()  # the default data dir, beside the executable

        url = f"ws://127.0.0.1:{bound['ws']}/gate"
        client = gameserver(
            env, elsewhere, "client", "--url", url, stdin='sys.echo {"n": 1}\ngreet.hello {"name": "bo"}\n'
        )
        assert client.returncode == 0, client.stderr
        assert client.stdout.splitlines() == ['ok sys.echo {"n": 1}', 'ok greet.hello {"text": "hello bo"}']
        nodes = gameserver(env, elsewhere, "nodes", "--json", *registry)
        assert nodes.returncode == 0, nodes.stderr
        assert [node["node"] for node in json.loads(nodes.stdout)["nodes"]] == ["beside"]
        jobs = gameserver(env, elsewhere, "jobs", "status", "--json", *registry)
        assert jobs.returncode == 0, jobs.stderr
        assert json.loads(jobs.stdout)["dead"] == 0
    finally:
        code = stop(server)
        await delete_prefixed(redis_url, prefix)
    assert code == 0, (tmp_path / "server.log").read_text()
    assert not (elsewhere / "var").exists()
