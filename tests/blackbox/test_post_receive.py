"""deploy/git/post-receive: a developer pushes their branch to a bare repository and their instance restarts with
the pushed modules, the hook printing its health and log back to them; deleting the branch stops the instance.

Real git, a real bare repository with the shipped hook installed, real `gameserver instances` processes; the
pushed code is a module package whose answer changes between pushes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gameserver.commands.instances import _is_gameserver, instance
from tests.blackbox.test_instances_cli import PORTS, free_base
from tests.clients import TcpClient

pytestmark = pytest.mark.blackbox

HOOK = Path(__file__).resolve().parents[2] / "deploy" / "git" / "post-receive"
MODULE = '''from gameserver.dispatch.registry import handler


async def version(**_: object) -> dict[str, str]:
    """Which push this is."""
    return {{"version": "{version}"}}

HANDLERS = {{"version": handler(version, login=False)}}
'''


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.invalid"}
    env |= {"GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.invalid"}
    env = {k: v for k, v in env.items() if not k.startswith("GAMESERVER_")}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, f"git {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Path]:
    """The development box: a bare repository with the hook, the instances' template, a gameserver command."""
    if shutil.which("git") is None:
        pytest.fail("git is not installed")
    box = tmp_path / "box"
    box.mkdir()
    base = free_base(1)
    sections: dict[str, list[str]] = {}
    for i, key in enumerate(PORTS):
        section, _, name = key.partition(".")
        sections.setdefault(section, []).append(f"{name} = {base + i}")
    ports = "".join(f"[{section}]\n" + "\n".join(lines) + "\n" for section, lines in sections.items())
    (box / "config.toml").write_text(
        ports
        + f'[server]\ndata_dir = "{box / "var"}"\nshutdown_grace = 2.0\n'
        + '[modules]\npaths = ["mods"]\n[game]\nconfig = ""\n'
    )
    command = box / "gameserver"  # what the box's PATH would have: this venv's gameserver
    command.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m gameserver "$@"\n')
    command.chmod(0o755)
    git("init", "--bare", "-q", "game.git", cwd=box)
    shutil.copy(HOOK, box / "game.git" / "hooks" / "post-receive")
    git("--git-dir", "game.git", "config", "gameserver.command", str(command), cwd=box)
    yield box
    subprocess.run([str(command), "instances", "--config", str(box / "config.toml"), "stop"], timeout=60)


def push(work: Path, version: str, *refspec: str) -> str:
    package = work / "mods" / "hello"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(MODULE.format(version=version))
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", f"hello {version}", cwd=work)
    return git("push", "origin", *refspec, cwd=work)


async def ask(port: int, fn: str) -> dict[str, object]:
    client = await TcpClient.open(port)
    try:
        return await client.call(fn)
    finally:
        client.writer.close()


def test_a_push_restarts_the_developers_instance_with_their_code(box: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    git("clone", "-q", str(box / "game.git"), str(work), cwd=tmp_path)
    (work / "mods" / "extra").mkdir(parents=True)
    (work / "mods" / "extra" / "__init__.py").write_text("HANDLERS: dict[str, object] = {}\n")
    git("checkout", "-q", "-b", "dev1", cwd=work)
    first = push(work, "one", "dev1")

    dev1 = instance(str(box / "config.toml"), 1)
    gate = dev1.config.gate.tcp_port
    assert "remote: dev1: healthy" in first, first
    assert "GET /healthz: 200" in first, first
    assert f"last 20 lines of {dev1.config.log.file}" in first and "node dev1 started" in first, first
    assert asyncio.run(ask(gate, "hello.version"))["data"] == {"version": "one"}
    pid = dev1.pid()
    assert pid is not None

    (work / "mods" / "extra" / "__init__.py").unlink()  # removed in the push: gone from the checkout too
    second = push(work, "two", "dev1")
    assert "remote: dev1: healthy" in second, second
    assert asyncio.run(ask(gate, "hello.version"))["data"] == {"version": "two"}
    assert not (box / "checkouts" / "dev1" / "mods" / "extra" / "__init__.py").exists()
    assert dev1.pid() not in (None, pid)  # a new process runs the new code
    assert not _is_gameserver(pid)

    other = push(work, "three", "HEAD:refs/heads/feature")
    assert "refs/heads/feature is not an instance branch" in other
    assert asyncio.run(ask(gate, "hello.version"))["data"] == {"version": "two"}

    running = dev1.pid()
    gone = git("push", "origin", ":dev1", cwd=work)
    assert "remote: deploy dev1: branch deleted, stopping the instance" in gone, gone
    assert dev1.pid() is None and running is not None and not _is_gameserver(running)


def test_a_broken_push_says_so_to_the_pusher(box: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    git("clone", "-q", str(box / "game.git"), str(work), cwd=tmp_path)
    git("checkout", "-q", "-b", "dev1", cwd=work)
    (work / "mods" / "broken").mkdir(parents=True)
    (work / "mods" / "broken" / "__init__.py").write_text("HANDLERS = {\n")  # a syntax error
    out = push(work, "one", "dev1")
    assert "dev1: exited with" in out, out
    assert "SyntaxError" in out, out  # the console's last lines name what broke
    assert instance(str(box / "config.toml"), 1).pid() is None
