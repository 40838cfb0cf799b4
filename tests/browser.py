"""A real headless Chromium for page tests, driven over the DevTools protocol with the websockets client.

No browser download and no driver package: Debian's ``chromium`` (``apt-get install chromium``) is started with
``--remote-debugging-port=0`` and spoken to over one WebSocket (CDP's flattened sessions). :func:`chromium_path`
installs it with apt when it is missing and that is possible (CI runs as root), else fails in CI and skips
elsewhere with the command to run.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import IN_CI

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
)
CANDIDATES = ("chromium", "chromium-browser", "/usr/bin/chromium")
INSTALL = "apt-get update && apt-get install -y --no-install-recommends chromium"
INSTALL_TIMEOUT = 600


def chromium_path() -> str:
    """The Chromium executable, installed with apt if missing and possible; fails in CI, skips elsewhere."""
    found = _which()
    if found:
        return found
    why = f"chromium is not installed ({INSTALL})"
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        result = subprocess.run(["sh", "-c", INSTALL], env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        found = _which()
        if found:
            return found
        why += f"; installing it failed: {result.stderr.strip()[-500:]}"
    if IN_CI:
        pytest.fail(why)
    pytest.skip(why)


def _which() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """One browser process and its DevTools connection. ``async with Chromium.launch(...) as browser``."""

    def __init__(self, process: asyncio.subprocess.Process, ws: ClientConnection) -> None:
        self.process = process
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.listeners: list[tuple[str | None, str, asyncio.Future[dict[str, Any]]]] = []
        self.errors: list[str] = []  # uncaught page exceptions and console errors
        self.stderr: list[str] = []
        self._reader = asyncio.create_task(self._read())
        self._drain: asyncio.Task[None] | None = None

    @classmethod
    async def launch(cls, executable: str, profile_dir: Path, *, width: int = 1400, height: int = 1000) -> Chromium:
        process = await asyncio.create_subprocess_exec(
            executable,
            *FLAGS,
            f"--user-data-dir={profile_dir}",
            f"--window-size={width},{height}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        lines: list[str] = []
        try:
            async with asyncio.timeout(30):
                while True:
                    raw = await process.stderr.readline()
                    if not raw:
                        raise RuntimeError("chromium exited before DevTools listened:\n" + "".join(lines))
                    line = raw.decode(errors="replace")
                    lines.append(line)
                    match = re.search(r"DevTools listening on (ws://\S+)", line)
                    if match:
                        break
            ws = await connect(match.group(1), max_size=None, open_timeout=10)
        except BaseException:
            process.kill()
            await process.wait()
            raise
        browser = cls(process, ws)
        browser.stderr = lines
        browser._drain = asyncio.create_task(browser._drain_stderr())
        return browser

    async def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        while raw := await self.process.stderr.readline():
            self.stderr.append(raw.decode(errors="replace"))

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                if "id" in message:
                    future = self.pending.pop(message["id"], None)
                    if future is not None and not future.done():
                        future.set_result(message)
                    continue
                self._event(message)
        except Exception:  # the connection went away: fail whatever still waits
            pass
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("DevTools connection closed"))

    def _event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method", ""), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        for listener in list(self.listeners):
            session, name, future = listener
            if name == method and session in (None, message.get("sessionId")) and not future.done():
                future.set_result(params)
                self.listeners.remove(listener)

    async def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        request_id = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        message: dict[str, Any] = {"id": request_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        await self.ws.send(json.dumps(message))
        reply = await future
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def expect(self, method: str, session: str | None = None) -> asyncio.Future[dict[str, Any]]:
        """A future for the next event ``method``; create it before the command that causes the event."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.listeners.append((session, method, future))
        return future

    async def new_page(self) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        for domain in ("Page", "Runtime"):
            await page.send(f"{domain}.enable")
        return page

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)
        if self.process.returncode is None:
            self.process.terminate()
            try:
                async with asyncio.timeout(10):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._drain is not None:
            await asyncio.gather(self._drain, return_exceptions=True)

    async def __aenter__(self) -> Chromium:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Page:
    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser = browser
        self.session = session

    async def send(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return await self.browser.send(method, params, self.session)

    async def goto(self, url: str, timeout: float = 20.0) -> None:
        loaded = self.browser.expect("Page.loadEventFired", self.session)
        result = await self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise RuntimeError(f"cannot load {url}: {result['errorText']}")
        async with asyncio.timeout(timeout):
            await loaded

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (a promise is awaited); a page exception raises."""
        result = await self.send(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True}
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    async def wait_for(self, condition: str, timeout: float = 10.0) -> Any:
        """Wait until the JavaScript expression ``condition`` is truthy in the page and return its value.

        The page checks it every 25 ms itself (one round trip); on timeout the error shows the page's text.
        """
        script = (
            "new Promise((resolve) => { const poll = () => { let value; "
            f"try {{ value = ({condition}); }} catch (e) {{ value = undefined; }} "
            "if (value) resolve(value); else setTimeout(poll, 25); }; poll(); })"
        )
        try:
            async with asyncio.timeout(timeout):
                return await self.evaluate(script)
        except TimeoutError:
            text = await self.evaluate("document.body ? document.body.innerText : ''")
            raise AssertionError(
                f"timed out after {timeout}s waiting for {condition}\npage errors: {self.browser.errors}\n"
                f"page text:\n{text}"
            ) from None

    async def screenshot(self, path: Path) -> None:
        data = await self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))
