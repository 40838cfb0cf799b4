"""``gameserver client``: a terminal game client for play-testing without a game build.

It speaks the gate over WebSocket (JSON text frames, PROTOCOL.md "Gate") and reads one command per line:

    sys.echo {"hello": "world"}     call a function with JSON args (args may be left out: {})
    login ada s3cret-pass           auth.login, then session.bind so that pushes arrive; later calls carry the token
    register ada s3cret-pass        auth.register, then the same
    wait [EVENT]                    wait for the next push (of that event), at most --timeout seconds
    help, quit                      (also Ctrl-D)

Each call waits for its reply before the next line is read, so a script piped to stdin gives its replies in
order. Replies print as ``ok FN DATA`` or ``error FN CODE: MESSAGE``; pushes print as ``push EVENT DATA`` as
soon as they arrive. On a terminal, lines are edited with readline and kept in ``~/.gameserver_history``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gameserver.config import Config

HISTORY = Path("~/.gameserver_history").expanduser()
HISTORY_LENGTH = 1000
PROMPT = "gs> "
HELP = """\
  module.function {json args}   call a function, e.g. sys.echo {"hello": "world"}
  login USER PASS               auth.login, then session.bind (pushes arrive); later calls carry the token
  register USER PASS            auth.register, then the same
  wait [EVENT]                  wait for the next push (of that event)
  help | quit                   this text | leave (Ctrl-D too)"""


class Client:
    """One gate connection and the commands typed into it.

    Args:
        ws: the open WebSocket to ``/gate``.
        out: where replies and messages go.
        notify: where pushes go, which arrive at any time (default ``out``; a terminal keeps its prompt intact).
        timeout: seconds to wait for a reply or a push.
    """

    def __init__(
        self,
        ws: ClientConnection,
        out: Callable[[str], None] = print,
        *,
        notify: Callable[[str], None] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.ws = ws
        self.out = out
        self.notify = notify or out
        self.timeout = timeout
        self.token: str | None = None
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.pushes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                future = self.pending.pop(message.get("id"), None) if isinstance(message.get("id"), int) else None
                if future is not None:
                    future.set_result(message)
                elif "event" in message:
                    self.notify(f"push {message['event']} {_dump(message.get('data'))}")
                    self.pushes.put_nowait(message)
                else:
                    self.notify(f"unexpected {_dump(message)}")
        except ConnectionClosed:
            pass
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("the server closed the connection"))

    async def call(self, fn: str, args: dict[str, Any]) -> dict[str, Any]:
        request_id = next(self.ids)
        request: dict[str, Any] = {"id": request_id, "fn": fn, "args": args}
        if self.token:
            request["token"] = self.token
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        await self.ws.send(json.dumps(request))
        try:
            async with asyncio.timeout(self.timeout):
                return await future
        finally:
            self.pending.pop(request_id, None)

    async def call_and_show(self, fn: str, args: dict[str, Any]) -> dict[str, Any]:
        reply = await self.call(fn, args)
        if reply.get("ok"):
            self.out(f"ok {fn} {_dump(reply.get('data'))}")
        else:
            error = reply.get("error") or {}
            self.out(f"error {fn} {error.get('code')}: {error.get('message')}")
        return reply

    async def run_line(self, line: str) -> bool:
        """Do one command; False when the user asked to quit."""
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        command, _, rest = line.partition(" ")
        rest = rest.strip()
        if command in ("quit", "exit"):
            return False
        if command in ("help", "?"):
            self.out(HELP)
        elif command in ("login", "register"):
            await self._login(command, rest)
        elif command == "wait":
            await self._wait(rest)
        elif "." in command:
            try:
                args = json.loads(rest) if rest else {}
            except json.JSONDecodeError as exc:
                self.out(f"usage: {command} {{json args}} ({exc.msg} at column {exc.colno})")
                return True
            if not isinstance(args, dict):
                self.out(f"usage: {command} {{json args}} (args are a JSON object)")
                return True
            await self.call_and_show(command, args)
        else:
            self.out(f"unknown command {command!r}: type a function name (module.function) or help")
        return True

    async def _login(self, command: str, rest: str) -> None:
        parts = rest.split()
        if len(parts) != 2:
            self.out(f"usage: {command} USERNAME PASSWORD")
            return
        reply = await self.call_and_show(f"auth.{command}", {"username": parts[0], "password": parts[1]})
        data = reply.get("data")
        if not reply.get("ok") or not isinstance(data, dict) or "token" not in data:
            return
        self.token = str(data["token"])
        bound = await self.call("session.bind", {"token": self.token})
        pushes = "pushes on" if bound.get("ok") else f"no pushes: session.bind {bound.get('error', {}).get('code')}"
        self.out(f"logged in as {parts[0]} (uid {data.get('uid')}, {pushes})")

    async def _wait(self, event: str) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    push = await self.pushes.get()
                    if not event or push.get("event") == event:
                        return
        except TimeoutError:
            self.out(f"no {event or 'push'} within {self.timeout:g}s")

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self.reader, return_exceptions=True)


def gate_url(config: Config) -> str:
    host = config.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"ws://{host}:{config.gate.ws_port}/gate"


async def session(url: str, timeout: float, interactive: bool) -> int:
    try:
        ws = await connect(url, open_timeout=timeout, max_size=None)
    except (OSError, TimeoutError) as exc:
        print(f"gameserver client: cannot connect to {url}: {exc}", file=sys.stderr)
        return 1
    prompting = asyncio.Event()  # set while the user is typing at the prompt

    def notify(text: str) -> None:
        if prompting.is_set():
            _print_above_prompt(text)
        else:
            _print(text)

    client = Client(ws, _print, notify=notify if interactive else _print, timeout=timeout)
    if interactive:
        print(f"connected to {url}; type help for commands, Ctrl-D to quit")
    lines = LineReader(PROMPT if interactive else "")
    status = 0
    try:
        while True:
            prompting.set()
            read = asyncio.ensure_future(lines.read())
            await asyncio.wait({read, client.reader}, return_when=asyncio.FIRST_COMPLETED)
            prompting.clear()
            if not read.done():
                read.cancel()
                print("\nconnection closed by the server", file=sys.stderr)
                status = 1
                break
            line = read.result()
            if line is None:
                break
            try:
                if not await client.run_line(line):
                    break
            except TimeoutError:
                _print(f"no reply within {timeout:g}s")
            except (ConnectionError, ConnectionClosed):
                print("connection closed by the server", file=sys.stderr)
                status = 1
                break
    finally:
        await client.close()
    return status


class LineReader:
    """Reads stdin in a daemon thread, one line per :meth:`read`, so that the prompt shows only when a line is
    wanted and a closed connection can end the client while the user is still typing."""

    def __init__(self, prompt: str) -> None:
        self.prompt = prompt
        self.loop = asyncio.get_running_loop()
        self.wanted = threading.Semaphore(0)
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        threading.Thread(target=self._run, name="stdin", daemon=True).start()

    async def read(self) -> str | None:
        """The next line, or None at the end of input."""
        self.wanted.release()
        return await self.lines.get()

    def _run(self) -> None:
        while True:
            self.wanted.acquire()
            line: str | None
            try:
                line = input(self.prompt) if self.prompt else sys.stdin.readline() or None
            except EOFError:
                line = None
            self.loop.call_soon_threadsafe(self.lines.put_nowait, line)
            if line is None:
                return


def _print(text: str) -> None:
    print(text, flush=True)


def _print_above_prompt(text: str) -> None:
    """Print above the prompt and redraw it with what the user has typed so far."""
    try:
        import readline

        typed = readline.get_line_buffer()
    except ImportError:
        typed = ""
    sys.stdout.write(f"\r\x1b[2K{text}\n{PROMPT}{typed}")
    sys.stdout.flush()


def _setup_history() -> None:
    try:
        import readline
    except ImportError:  # no readline on this platform: plain input()
        return
    import atexit

    try:
        readline.read_history_file(HISTORY)
    except OSError:
        pass
    readline.set_history_length(HISTORY_LENGTH)
    atexit.register(_save_history, readline)


def _save_history(readline: Any) -> None:
    try:
        readline.write_history_file(HISTORY)
    except OSError:
        pass


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def main(config: Config, *, url: str = "", timeout: float = 10.0) -> int:
    """Run the client against ``url`` (default: the config's WebSocket gate) until EOF or ``quit``."""
    interactive = sys.stdin.isatty() and os.environ.get("TERM") != "dumb"
    if interactive:
        _setup_history()
    try:
        return asyncio.run(session(url or gate_url(config), timeout, interactive))
    except KeyboardInterrupt:
        print()
        return 130
