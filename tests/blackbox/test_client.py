"""``gameserver client`` as a subprocess against an in-process server: a stdin script, and a real terminal (tmux)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gameserver.app import App
from tests.blackbox.support import clean_env

pytestmark = pytest.mark.blackbox

PROBE = """
from gameserver.dispatch.registry import handler

SESSIONS = []  # the callers, so that a test can push to them later


async def ping(n: int, *, session, **_):
    SESSIONS.append(session)
    session.push("{name}.pinged", {{"n": n}})
    return "sent"


HANDLERS = {{"ping": handler(ping, login=False)}}
"""


@pytest.fixture
async def served(app_factory: Callable[..., Any], tmp_path: Path) -> tuple[App, str]:
    name = f"probe{uuid.uuid4().hex[:8]}"
    (tmp_path / "mods" / name).mkdir(parents=True)
    (tmp_path / "mods" / name / "__init__.py").write_text(PROBE.format(name=name))
    app: App = await app_factory(modules={"paths": [str(tmp_path / "mods")]})
    return app, name


def client_command(app: App) -> list[str]:
    gate, http = f"ws://127.0.0.1:{app.ports['ws']}/gate", f"http://127.0.0.1:{app.ports['http']}"
    return [sys.executable, "-m", "gameserver", "client", "--url", gate, "--http-url", http]


def client_env(home: Path) -> dict[str, str]:
    return {**clean_env(), "HOME": str(home)}


async def test_a_script_on_stdin(served: tuple[App, str], tmp_path: Path) -> None:
    app, probe = served
    user = f"u{uuid.uuid4().hex[:10]}"
    script = "\n".join(
        [
            "# comments and blank lines are skipped",
            "",
            'sys.echo {"a": [1, 2], "s": "é"}',
            "sys.echo",
            "no.such {}",
            "sys.echo [1]",
            "sys.echo {oops",
            "register x",
            f'register {user} "correct horse battery',
            f'register {user} "correct horse battery"',
            f'{probe}.ping {{"n": 7}}',
            f"wait {probe}.pinged",
            "frobnicate",
            "quit",
            "sys.echo {}",  # after quit: never sent
        ]
    )
    process = await asyncio.create_subprocess_exec(
        *client_command(app),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=client_env(tmp_path),
    )
    async with asyncio.timeout(30):
        stdout, stderr = await process.communicate(script.encode())
    assert process.returncode == 0, stderr.decode()
    lines = stdout.decode().splitlines()
    assert lines[:7] == [
        'ok sys.echo {"a": [1, 2], "s": "é"}',
        "ok sys.echo {}",
        "error no.such unknown_function: no function no.such",
        "usage: sys.echo {json args} (args are a JSON object)",
        "usage: sys.echo {json args} (Expecting property name enclosed in double quotes at column 2)",
        "usage: register USERNAME PASSWORD (quote a password with spaces)",
        "usage: register USERNAME PASSWORD (No closing quotation)",
    ]
    assert lines[7].startswith('ok auth.register {"uid": ')
    uid = lines[7].split('"uid": ')[1].split(",")[0]
    token = lines[7].split('"token": "')[1].split('"')[0]
    assert token.endswith(" chars)") and len(token.split("...")[0]) == 12  # shortened, never printed whole
    assert lines[8:] == [
        f"logged in as {user} (uid {uid}, pushes on)",
        f'push {probe}.pinged {{"n": 7}}',  # the push is sent before the reply
        f'ok {probe}.ping "sent"',
        "unknown command 'frobnicate': type a function name (module.function) or help",
    ]


async def test_functions_and_chat(served: tuple[App, str], tmp_path: Path) -> None:
    app, probe = served
    user = f"u{uuid.uuid4().hex[:10]}"
    script = "\n".join(
        [
            "functions sys.",
            f"functions {probe}",
            "say too early",
            "chat",
            f"register {user} 'pass word 12'",
            "chat",
            "say hello, world",
            "sys.echo {}",  # a round trip, so that the chat line has come back by the time stdin ends
            "sys.echo {}",
        ]
    )
    process = await asyncio.create_subprocess_exec(
        *client_command(app),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=client_env(tmp_path),
    )
    async with asyncio.timeout(30):
        stdout, stderr = await process.communicate(script.encode())
    assert process.returncode == 0, stderr.decode()
    lines = stdout.decode().splitlines()
    assert lines[:4] == [
        "sys.echo()  [no login]  Returns `args` unchanged.",
        "sys.time()  [no login]  Returns the server time in milliseconds since the epoch.",
        f"{probe}.ping(n: an integer)  [no login]",
        "chat: not connected (type chat first)",
    ], lines
    assert lines[4] == "chat: log in first (login USER PASS)"
    assert lines[6] == f"logged in as {user} (uid {lines[6].split('uid ')[1].split(',')[0]}, pushes on)"
    assert lines[7].startswith('chat: logged in as {"uid":') and f'"name":"{user}"' in lines[7]
    assert any(line.startswith("chat PUBLIC ") and '"text":"hello, world"' in line for line in lines[8:]), lines


async def test_a_closed_connection_ends_the_client(app_factory: Callable[..., Any], tmp_path: Path) -> None:
    app: App = await app_factory()
    process = await asyncio.create_subprocess_exec(
        *client_command(app),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=client_env(tmp_path),
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(b"sys.echo {}\n")
    async with asyncio.timeout(30):
        assert await process.stdout.readline() == b"ok sys.echo {}\n"
        await app.stop()  # the client is waiting for its next line
        stdout, stderr = await process.communicate()
    assert process.returncode == 1
    assert b"connection closed by the server" in stderr


async def test_no_server(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gameserver",
        "client",
        "--url",
        "ws://127.0.0.1:9/gate",
        stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=client_env(tmp_path),
    )
    async with asyncio.timeout(30):
        _, stderr = await process.communicate()
    assert process.returncode == 1
    assert b"cannot connect to ws://127.0.0.1:9/gate" in stderr


class Tmux:
    """A private tmux server (its own socket) running one command in a real terminal."""

    def __init__(self, socket_dir: Path) -> None:
        self.socket = str(socket_dir / "tmux.sock")

    async def run(self, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            "tmux", "-S", self.socket, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        stdout, stderr = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {stderr.decode().strip()}")
        return stdout.decode()

    async def screen(self) -> str:
        return await self.run("capture-pane", "-p", "-t", "client")

    async def wait_for(self, text: str, timeout: float = 15.0, *, last: bool = False) -> str:
        """The screen once ``text`` is on it (with ``last``: once its last line is ``text``, which an earlier line
        holding the same text cannot satisfy)."""
        try:
            async with asyncio.timeout(timeout):
                while not _shows(screen := await self.screen(), text, last):
                    await asyncio.sleep(0.05)
                return screen
        except TimeoutError:
            raise AssertionError(f"{text!r} not on the screen:\n{await self.screen()}") from None


def _shows(screen: str, text: str, last: bool) -> bool:
    return screen.rstrip().endswith(text) if last else text in screen


@pytest.fixture
async def tmux(tmp_path: Path) -> AsyncIterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux)")
    terminal = Tmux(tmp_path)
    yield terminal
    try:
        pid = int((await terminal.run("display-message", "-p", "#{pid}")).strip())
    except (RuntimeError, ValueError):
        return  # the session ended and took the server with it
    os.kill(pid, 15)


async def test_interactive_in_a_terminal(served: tuple[App, str], tmux: Tmux, tmp_path: Path) -> None:
    app, probe = served
    env = " ".join(f"{k}={v}" for k, v in {"HOME": str(tmp_path), "TERM": "xterm"}.items())
    command = " ".join(client_command(app))
    await tmux.run("new-session", "-d", "-s", "client", "-x", "160", "-y", "40", f"env {env} {command}")
    await tmux.wait_for("gs>")
    await tmux.run("send-keys", "-t", "client", f'{probe}.ping {{"n": 1}}', "Enter")
    screen = await tmux.wait_for(f'ok {probe}.ping "sent"')
    assert f'push {probe}.pinged {{"n": 1}}' in screen
    await tmux.run("send-keys", "-t", "client", "sys.echo {}", "Enter")
    await tmux.wait_for("ok sys.echo {}")
    # A push while the user is typing shows above the prompt, which comes back with the typed text
    await tmux.run("send-keys", "-t", "client", "sys.ec")
    await tmux.wait_for("gs> sys.ec", last=True)  # typed: the line above ("gs> sys.echo {}") must not count
    sys.modules[f"gameserver_modules.{probe}"].SESSIONS[-1].push("news", {"text": "server restarts soon"})
    screen = await tmux.wait_for('push news {"text": "server restarts soon"}')
    assert screen.rstrip().endswith("gs> sys.ec")
    await tmux.run("send-keys", "-t", "client", "C-u")
    # readline history: Up brings back the last line
    await tmux.run("send-keys", "-t", "client", "Up")
    await tmux.wait_for("gs> sys.echo {}", last=True)
    # Ctrl-C ends a wait (or a slow call) and the client stays, at its prompt, on the same connection
    await tmux.run("send-keys", "-t", "client", "C-u", "wait never.sent", "Enter")
    await tmux.wait_for("gs> wait never.sent", last=True)
    await tmux.run("send-keys", "-t", "client", "C-c")
    await tmux.wait_for("cancelled\ngs>", last=True)
    await tmux.run("send-keys", "-t", "client", 'sys.echo {"after": "ctrl-c"}', "Enter")
    await tmux.wait_for('ok sys.echo {"after": "ctrl-c"}\ngs>', last=True)
    await tmux.run("send-keys", "-t", "client", "quit", "Enter")
    async with asyncio.timeout(15):
        while (tmp_path / ".gameserver_history").exists() is False:
            await asyncio.sleep(0.05)
    assert "sys.echo {}" in (tmp_path / ".gameserver_history").read_text()
