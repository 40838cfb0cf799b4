"""Hot reload: a connected client sees edited module code on its next call; broken edits keep the old code."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gameserver.app import App
from gameserver.features.reload import Reloader
from tests.clients import WsClient, http_url

INIT = """
from gameserver.dispatch.registry import handler
from .handlers import slow, version

HANDLERS = {"version": handler(version, login=False), "slow": handler(slow, login=False)}
"""

HANDLERS = """
import asyncio

VERSION = {version!r}
RELEASE = asyncio.Event()


async def version(**_):
    return VERSION


async def slow(**_):
    await RELEASE.wait()
    return VERSION
"""


class Package:
    """A module package under ``root``, named uniquely: path packages live in sys.modules by name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = f"hot{uuid.uuid4().hex[:8]}"
        self.folder = root / self.name
        self.handlers = self.folder / "handlers.py"

    def write(self, version: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "__init__.py").write_text(textwrap.dedent(INIT))
        self.handlers.write_text(textwrap.dedent(HANDLERS).replace("{version!r}", repr(version)))


@pytest.fixture
def hot(tmp_path: Path) -> Package:
    return Package(tmp_path / "mods")


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def edit(reloader: Reloader, change: Callable[[], None], timeout: float = 10.0) -> None:
    """Make a change on disk and wait until the reloader has tried it."""
    count = reloader.attempts + 1
    change()
    async with asyncio.timeout(timeout):
        await reloader.wait_attempts(count)


async def start(app_factory: Callable[..., Any], root: Path) -> tuple[App, Reloader]:
    app: App = await app_factory(modules={"paths": [str(root)], "reload": True, "reload_poll": 0.02})
    reloader = app.reloader
    assert reloader is not None
    return app, reloader


async def test_an_edit_reaches_a_connected_client_and_running_requests_finish_on_the_old_code(
    app_factory: Callable[..., Any], hot: Package
) -> None:
    hot.write("one")
    app, reloader = await start(app_factory, hot.root)
    client = await WsClient.open(app.ports["ws"])
    assert await client.call(f"{hot.name}.version") == {"id": 1, "ok": True, "data": "one"}

    await client.send({"id": 100, "fn": f"{hot.name}.slow"})  # in flight across the reload
    assert app.dispatcher is not None
    dispatcher = app.dispatcher
    await until(lambda: dispatcher.inflight == 1)
    old = sys.modules[f"gameserver_modules.{hot.name}.handlers"]

    await edit(reloader, lambda: hot.write("two"))
    assert reloader.error == ""
    assert await client.call(f"{hot.name}.version") == {"id": 2, "ok": True, "data": "two"}

    old.RELEASE.set()
    assert await client.recv() == {"id": 100, "ok": True, "data": "one"}
    await client.close()


async def test_broken_edits_keep_the_old_version_answering_until_fixed(
    app_factory: Callable[..., Any], hot: Package
) -> None:
    hot.write("good")
    app, reloader = await start(app_factory, hot.root)
    client = await WsClient.open(app.ports["ws"])
    assert (await client.call(f"{hot.name}.version"))["data"] == "good"

    handlers = hot.handlers
    await edit(reloader, lambda: handlers.write_text("async def version(**_):\n    return (\n"))
    assert "SyntaxError" in reloader.error
    assert (await client.call(f"{hot.name}.version"))["data"] == "good"

    sync_handler = "def version(**_):\n    return 'sync'\n\nasync def slow(**_):\n    return 0\n"
    await edit(reloader, lambda: handlers.write_text(sync_handler))
    assert "must be an async function" in reloader.error
    assert (await client.call(f"{hot.name}.version"))["data"] == "good"

    raising = "raise RuntimeError('import-time failure')\n"
    await edit(reloader, lambda: handlers.write_text(raising))
    assert "RuntimeError: import-time failure" in reloader.error
    assert (await client.call(f"{hot.name}.version"))["data"] == "good"

    async with aiohttp.ClientSession() as http:
        async with http.get(http_url(app, "/console/api/status")) as response:
            status = await response.json()
    assert status["reload"]["error"] == reloader.error
    assert status["reload"]["attempts"] == 3 and status["reload"]["reloads"] == 0

    await edit(reloader, lambda: hot.write("fixed"))
    assert reloader.error == ""
    assert (await client.call(f"{hot.name}.version"))["data"] == "fixed"
    await client.close()


async def test_a_same_size_edit_within_one_second_is_not_served_from_stale_bytecode(
    app_factory: Callable[..., Any], hot: Package, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A .pyc records its source's mtime in whole seconds and its size: without care, Python would reuse it.
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as on a developer's machine
    hot.write("aaa")
    handlers = hot.handlers
    second = (handlers.stat().st_mtime_ns // 1_000_000_000 - 10) * 1_000_000_000
    os.utime(handlers, ns=(second, second + 100_000_000))
    app, reloader = await start(app_factory, hot.root)
    client = await WsClient.open(app.ports["ws"])
    assert (await client.call(f"{hot.name}.version"))["data"] == "aaa"

    def same_size_edit() -> None:
        hot.write("bbb")
        os.utime(handlers, ns=(second, second + 600_000_000))

    assert list(hot.folder.glob("__pycache__/handlers.*.pyc"))
    await edit(reloader, same_size_edit)
    assert (await client.call(f"{hot.name}.version"))["data"] == "bbb"
    await client.close()


async def test_new_and_removed_packages(app_factory: Callable[..., Any], hot: Package) -> None:
    hot.write("one")
    app, reloader = await start(app_factory, hot.root)
    extra = hot.root / f"extra{hot.name}"

    def add() -> None:
        extra.mkdir()
        (extra / "__init__.py").write_text(
            "from gameserver.dispatch.registry import handler\n\nasync def ping(**_):\n    return 'pong'\n\n"
            "HANDLERS = {'ping': handler(ping, login=False)}\n"
        )

    await edit(reloader, add)
    assert f"{extra.name}.ping" in app.table
    client = await WsClient.open(app.ports["ws"])
    assert (await client.call(f"{extra.name}.ping"))["data"] == "pong"

    await edit(reloader, lambda: shutil.rmtree(extra))
    assert f"{extra.name}.ping" not in app.table
    assert (await client.call(f"{extra.name}.ping"))["error"]["code"] == "unknown_function"
    assert (await client.call(f"{hot.name}.version"))["data"] == "one"
    await client.close()


async def test_reload_is_off_unless_asked(app: App) -> None:
    assert app.reloader is None


LIFECYCLE = """
from gameserver.dispatch.registry import handler

VERSION = {version!r}
EVENTS = {events!r}


def note(text):
    with open(EVENTS, "a") as f:
        f.write(text + "\\n")


async def startup(resources):
    if VERSION == "refuses":
        raise RuntimeError("cannot start")
    note("start " + VERSION)


async def shutdown(resources):
    note("stop " + VERSION)


async def version(**_):
    return VERSION


HANDLERS = {{"version": handler(version, login=False)}}
"""


async def test_startup_and_shutdown_of_reloaded_packages(app_factory: Callable[..., Any], hot: Package) -> None:
    events = hot.root / "events.txt"

    def write(version: str) -> None:
        hot.folder.mkdir(parents=True, exist_ok=True)
        (hot.folder / "__init__.py").write_text(LIFECYCLE.format(version=version, events=str(events)))

    write("one")
    app, reloader = await start(app_factory, hot.root)
    assert events.read_text().splitlines() == ["start one"]

    await edit(reloader, lambda: write("two"))
    assert events.read_text().splitlines() == ["start one", "start two", "stop one"]  # new up before old down

    await edit(reloader, lambda: write("refuses"))
    assert "RuntimeError: cannot start" in reloader.error
    client = await WsClient.open(app.ports["ws"])
    assert (await client.call(f"{hot.name}.version"))["data"] == "two"
    await client.close()

    await app.stop()
    assert events.read_text().splitlines() == ["start one", "start two", "stop one", "stop two"]


async def test_a_package_under_modules_is_reloaded_in_place(
    app_factory: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A built-in package (modules.<name>); the folder is added to the `modules` package's path for the test.
    import modules

    builtin = Package(tmp_path / "builtin")
    builtin.write("one")
    monkeypatch.setattr(modules, "__path__", [*modules.__path__, str(builtin.root)])
    app: App = await app_factory(modules={"reload": True, "reload_poll": 0.02})
    reloader = app.reloader
    assert reloader is not None
    client = await WsClient.open(app.ports["ws"])
    assert (await client.call(f"{builtin.name}.version"))["data"] == "one"
    first = getattr(modules, builtin.name)

    await edit(reloader, lambda: builtin.handlers.write_text("def (:\n"))
    assert "SyntaxError" in reloader.error
    assert getattr(modules, builtin.name) is first  # the import's side effects are rolled back
    assert sys.modules[f"modules.{builtin.name}"] is first

    await edit(reloader, lambda: builtin.write("two"))
    assert (await client.call(f"{builtin.name}.version"))["data"] == "two"
    assert sys.modules[f"modules.{builtin.name}"] is getattr(modules, builtin.name) is not first
    await client.close()
    for name in [name for name in sys.modules if name.startswith(f"modules.{builtin.name}")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delattr(modules, builtin.name)


CRASHING = """
async def version(**_):
    raise ValueError("the old version ran")


async def slow(**_):
    return 0
"""

# Line 3 holds other code now; importing it fails (a failed reload), so the old version keeps running.
BROKEN = """
async def version(**_):
    raise_it = RuntimeError("the new version, refused")
raise RuntimeError("import-time failure")
"""


async def test_tracebacks_show_the_source_that_ran_after_a_failed_reload(
    app_factory: Callable[..., Any], hot: Package, caplog: pytest.LogCaptureFixture
) -> None:
    hot.write("x")
    hot.handlers.write_text(CRASHING)
    app: App = await app_factory(
        modules={"paths": [str(hot.root)], "reload": True, "reload_poll": 0.02}, server={"dev": True}
    )
    reloader = app.reloader
    assert reloader is not None
    client = await WsClient.open(app.ports["ws"])
    handlers = hot.handlers

    await edit(reloader, lambda: handlers.write_text(BROKEN))
    assert reloader.error == f"module {hot.name}: RuntimeError: import-time failure (at {handlers}:4)"
    failed = next(r for r in caplog.records if r.getMessage().startswith(f"reload of {hot.name} failed"))
    assert failed.exc_text is not None and 'raise RuntimeError("import-time failure")' in failed.exc_text

    caplog.clear()
    reply = await client.call(f"{hot.name}.version")
    # The old version answered; the developer sees its exception, and its traceback shows its own line 3.
    exception = reply["error"]["exception"]
    assert exception == {"type": "ValueError", "message": "the old version ran", "file": str(handlers), "line": 3}
    (crash,) = [r for r in caplog.records if r.getMessage().startswith(f"internal error in {hot.name}.version")]
    assert crash.exc_text is not None
    assert 'raise ValueError("the old version ran")' in crash.exc_text and "the new version" not in crash.exc_text
    await client.close()
