"""``gameserver client``: a terminal game client for play-testing without a game build.

It speaks the gate over WebSocket (JSON text frames, PROTOCOL.md "Gate") and reads one command per line (see
``HELP``): function calls with JSON args, ``login``/``register`` (arguments split like a shell's, so a password
with spaces goes in quotes), ``wait`` for a push, ``functions`` (what the server offers, from the console's API),
and the chat edge (``chat`` logs in to ``/chat`` with a nonce, then ``say``/``family`` post to it).

Each call waits for its reply before the next line is read, so a script piped to stdin gives its replies in
order. Replies print as ``ok FN DATA`` or ``error FN CODE: MESSAGE``; pushes print as ``push EVENT DATA`` and chat
lines as ``chat COMMAND DATA`` as soon as they arrive. Tokens print shortened: the full token never reaches the
screen or a log of it. On a terminal, lines are edited with readline and kept in ``~/.gameserver_history``, and
Ctrl-C cancels the command under way (a ``wait``, a slow call) rather than quitting.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gameserver.config import Config
from gameserver.protocol.lines import COMMAND_SIZE, Command, encode_body

HISTORY = Path("~/.gameserver_history").expanduser()
HISTORY_LENGTH = 1000
PROMPT = "gs> "
TOKEN_SHOWN = 12  # characters of a token printed before the ellipsis
HELP = """\
  module.function {json args}   call a function, e.g. sys.echo {"hello": "world"}
  functions [PREFIX]            what the server offers: name(args), login needed, what it does
  login USER PASS               auth.login, then session.bind (pushes arrive); later calls carry the token
  register USER PASS            auth.register, then the same ("quote a password with spaces")
  wait [EVENT]                  wait for the next push (of that event); Ctrl-C stops waiting
  chat                          log in to the chat edge (/chat) with a nonce; its lines print as they come
  say TEXT | family TEXT        post to your world's public channel | to your family's
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
        http_url: str = "",
        chat_url: str = "",
    ) -> None:
        self.ws = ws
        self.http_url = http_url.rstrip("/")
        self.chat_url = chat_url
        self.chat: ClientConnection | None = None
        self.chat_reader: asyncio.Task[None] | None = None
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
            self.out(f"ok {fn} {_dump(_redact(reply.get('data')))}")
        else:
            error = reply.get("error") or {}
            cid = f" (correlation id {error['cid']})" if error.get("cid") else ""  # the server log line's
            self.out(f"error {fn} {error.get('code')}: {error.get('message')}{cid}")
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
        elif command == "functions":
            await self._functions(rest)
        elif command == "chat":
            await self._chat_login()
        elif command in ("say", "family"):
            await self._say(command, rest)
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
        try:
            parts = shlex.split(rest)
        except ValueError as exc:  # an unclosed quote
            self.out(f"usage: {command} USERNAME PASSWORD ({exc})")
            return
        if len(parts) != 2:
            self.out(f"usage: {command} USERNAME PASSWORD (quote a password with spaces)")
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

    async def _functions(self, prefix: str) -> None:
        url = f"{self.http_url}/console/api/functions"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as http:
                async with http.get(url) as response:
                    if response.status != 200:
                        self.out(f"functions: {url} answered {response.status} (is the console enabled there?)")
                        return
                    listing = await response.json()
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            self.out(f"functions: cannot read {url}: {exc or type(exc).__name__} (--http-url sets it)")
            return
        for entry in listing.get("functions", []):
            if not str(entry.get("fn", "")).startswith(prefix.strip()):
                continue
            params = ", ".join(
                f"{arg['name']}: {arg['type']}" + ("" if arg.get("required") else f" = {_dump(arg.get('default'))}")
                for arg in entry.get("args", [])
            )
            login = "" if entry.get("login") else "  [no login]"
            doc = f"  {entry['doc'].replace('``', '`')}" if entry.get("doc") else ""
            self.out(f"{entry['fn']}({params}){login}{doc}")

    async def _chat_login(self) -> None:
        if self.chat is not None:
            self.out("chat: already connected")
            return
        if not self.token:
            self.out("chat: log in first (login USER PASS)")
            return
        reply = await self.call("auth.nonce", {})
        data = reply.get("data")
        if not reply.get("ok") or not isinstance(data, dict):
            self.out(f"chat: auth.nonce {(reply.get('error') or {}).get('code')}")
            return
        try:
            chat = await connect(self.chat_url, open_timeout=self.timeout)
        except (OSError, TimeoutError) as exc:
            self.out(f"chat: cannot connect to {self.chat_url}: {exc}")
            return
        await chat.send(_line(Command.LOGIN, str(data["nonce"])))
        try:
            async with asyncio.timeout(self.timeout):
                answer = str(await chat.recv())
        except (TimeoutError, ConnectionClosed) as exc:
            self.out(f"chat: no answer to LOGIN ({exc or type(exc).__name__})")
            await chat.close()
            return
        command, payload = answer[:COMMAND_SIZE].rstrip(), answer[COMMAND_SIZE:]
        if command != Command.OK:
            self.out(f"chat: {answer}")
            await chat.close()
            return
        self.chat = chat
        self.chat_reader = asyncio.create_task(self._read_chat(chat))
        self.out(f"chat: logged in as {payload}")

    async def _read_chat(self, chat: ClientConnection) -> None:
        try:
            async for line in chat:
                text = str(line)
                self.notify(f"chat {text[:COMMAND_SIZE].rstrip()} {text[COMMAND_SIZE:]}")
        except ConnectionClosed:
            pass
        if self.chat is chat:
            self.chat = None
            self.notify(f"chat: closed ({chat.close_code} {chat.close_reason})".rstrip())

    async def _say(self, command: str, text: str) -> None:
        if self.chat is None:
            self.out("chat: not connected (type chat first)")
            return
        if not text:
            self.out(f"usage: {command} TEXT")
            return
        await self.chat.send(_line(Command.PUBLIC if command == "say" else Command.FAMILY, text))

    async def close(self) -> None:
        if self.chat is not None:
            await self.chat.close()
        await self.ws.close()
        await asyncio.gather(self.reader, *([self.chat_reader] if self.chat_reader else []), return_exceptions=True)


def _host(config: Config) -> str:
    host = config.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def gate_url(config: Config) -> str:
    return f"ws://{_host(config)}:{config.gate.ws_port}/gate"


def http_url(config: Config) -> str:
    return f"http://{_host(config)}:{config.http.port}"


def chat_url(gate: str) -> str:
    """The chat edge's WebSocket URL beside the gate's (same listener, path ``/chat``)."""
    base = gate.split("://", 1)
    scheme, rest = (base[0], base[1]) if len(base) == 2 else ("ws", base[0])
    return f"{scheme}://{rest.split('/', 1)[0]}/chat"


async def session(url: str, timeout: float, interactive: bool, http: str = "") -> int:
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

    client = Client(
        ws, _print, notify=notify if interactive else _print, timeout=timeout, http_url=http, chat_url=chat_url(url)
    )
    if interactive:
        print(f"connected to {url}; type help for commands, Ctrl-D to quit")
    lines = LineReader(PROMPT if interactive else "")
    loop = asyncio.get_running_loop()
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
            command = asyncio.ensure_future(client.run_line(line))
            if interactive:  # Ctrl-C while a command runs cancels it; at the prompt, it quits (as Ctrl-D does)
                loop.add_signal_handler(signal.SIGINT, command.cancel)
            try:
                if not await command:
                    break
            except asyncio.CancelledError:
                if not command.cancelled():
                    raise  # this session itself is being cancelled
                _print("cancelled")
            except TimeoutError:
                _print(f"no reply within {timeout:g}s")
            except (ConnectionError, ConnectionClosed):
                print("connection closed by the server", file=sys.stderr)
                status = 1
                break
            finally:
                if interactive:
                    loop.remove_signal_handler(signal.SIGINT)
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


def _line(command: Command, payload: str) -> str:
    """A chat line as one WebSocket text frame (PROTOCOL.md: the command field padded to its width, no CRLF)."""
    return encode_body(command, payload.encode()).decode()


def _redact(value: Any) -> Any:
    """``value`` with every string under a key naming a token shortened: enough to tell two apart, not to use."""
    if isinstance(value, dict):
        return {
            key: _short(item) if "token" in str(key) and isinstance(item, str) else _redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


def _short(token: str) -> str:
    return token if len(token) <= TOKEN_SHOWN else f"{token[:TOKEN_SHOWN]}... ({len(token)} chars)"


def main(config: Config, *, url: str = "", http: str = "", timeout: float = 10.0) -> int:
    """Run the client against ``url`` (default: the config's WebSocket gate) until EOF or ``quit``; ``http`` is
    the HTTP listener's base URL, for ``functions`` (default: the config's)."""
    interactive = sys.stdin.isatty() and os.environ.get("TERM") != "dumb"
    if interactive:
        _setup_history()
    try:
        return asyncio.run(session(url or gate_url(config), timeout, interactive, http or http_url(config)))
    except KeyboardInterrupt:
        print()
        return 130
