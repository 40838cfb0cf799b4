"""Hot reload of module packages (``gameserver run --reload``): new code without dropping connected clients.

Every ``modules.reload_poll`` seconds the ``.py`` files of each module package (under ``modules/`` and in
``modules.paths``) are compared with the last pass by size and modification time. The packages that changed
are imported afresh, the whole function table is rebuilt with the same start-up checks
(:func:`~gameserver.dispatch.registry.build_table`), the new packages' ``startup(resources)`` runs, and only then is
the table swapped into the dispatcher (:meth:`~gameserver.dispatch.functions.Functions.swap`), with the
tables the features build from the modules (the job table, ``JOBS``); the replaced packages'
``shutdown(resources)`` runs last. Requests and jobs already running finish on the code they started with.

If anything fails (an import error, a handler the checks refuse, a ``startup`` that raises) nothing is
swapped: the previous version keeps answering, the imports are rolled back, and the error is logged and
shown on the console until the next edit. A package is reloaded as a whole; code outside ``modules``
(``gameserver/``, ``enums/``) and other packages that imported names from it keep what they had.

Tables a package declares on the shared ``metadata`` as module-level names are dropped from it before the
new version defines them again; tables that are new are created after a successful reload.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
import pkgutil
import sys
import types
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from gameserver import metrics
from gameserver.config import ModulesConfig
from gameserver.dispatch import crashes
from gameserver.dispatch.functions import Functions
from gameserver.dispatch.registry import _import_path, load
from gameserver.errors import ConfigError, ModuleError
from gameserver.features.lifespan import Contribution
from gameserver.storage.migrate import Schema
from gameserver.storage.sql import Sql, metadata

log = logging.getLogger("gameserver.features.reload")

Files = dict[str, tuple[int, int]]  # path -> (size, mtime_ns)

BUILTIN_PREFIX = "modules."
PATHS_PREFIX = "gameserver_modules."  # what registry.discover names the packages found in modules.paths


@dataclass(frozen=True)
class Package:
    name: str
    qualified: str  # its name in sys.modules
    folder: Path
    files: Files = field(compare=False)


class Reloader:
    """Watches the module packages and swaps new versions of those that change into ``functions``.

    Args:
        config: the ``[modules]`` section (where packages are, which are disabled).
        functions: the worker's function table; created before the modules are imported, so that an edit
            made meanwhile is not missed.
        db: creates the tables a new version declares.
        period: seconds between scans.
    """

    def __init__(self, config: ModulesConfig, functions: Functions, db: Sql, period: float) -> None:
        self.config = config
        self.functions = functions
        self.db = db
        self.period = period
        self.packages = self.scan()
        self.attempts = 0  # reloads tried, successful or not
        self.reloads = 0  # reloads swapped in
        self.error = ""  # why the last attempt failed; "" after a success
        self.last: list[str] = []  # the packages of the last attempt
        self._attempted = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def scan(self) -> dict[str, Package]:
        """The module packages on disk now, with their files' sizes and modification times."""
        config = self.config
        disabled = set(config.disabled)
        import modules as builtin

        roots = [(BUILTIN_PREFIX, Path(folder)) for folder in builtin.__path__]
        roots += [(PATHS_PREFIX, Path(folder)) for folder in config.paths]
        found: dict[str, Package] = {}
        for prefix, root in roots:
            for info in pkgutil.iter_modules([str(root)]):
                if info.ispkg and info.name not in disabled and info.name not in found:
                    folder = root / info.name
                    found[info.name] = Package(info.name, prefix + info.name, folder, _files(folder))
        return found

    async def check(self) -> bool | None:
        """Scan once and reload the packages that changed: None if none did, else whether the swap happened."""
        async with self._lock:
            return await self._check()

    async def _check(self) -> bool | None:
        current = self.scan()
        previous = self.packages
        changed = [name for name, pkg in current.items() if name not in previous or pkg.files != previous[name].files]
        # A package is gone only when its folder is; a missing __init__.py (an editor mid-save) keeps the old one.
        removed = {name: pkg for name, pkg in previous.items() if name not in current and not pkg.folder.is_dir()}
        kept_old = {name: pkg for name, pkg in previous.items() if name not in current and name not in removed}
        if not changed and not removed:
            return None
        # The snapshot moves on even if the reload fails: a broken version is retried when it is edited again.
        self.packages = {**current, **kept_old}
        for name in changed:
            if name in previous:
                _drop_stale_bytecode(previous[name].files, current[name].files)
        self.last = sorted([*changed, *removed])
        # The old version's source lines, for its tracebacks if the new one is refused (the import pins its own).
        paths = [path for name in changed for pkg in (previous.get(name), current[name]) if pkg for path in pkg.files]
        lines = crashes.pinned(paths)
        try:
            await self.reload({name: current[name] for name in changed}, removed)
        except Exception as exc:
            self.error = _describe(exc)
            metrics.RELOADS.labels("modules", "error").inc()
            log.error(  # its traceback shows the new version's lines: that is what ran
                "reload of %s failed, the previous version keeps running: %s",
                ", ".join(self.last),
                self.error,
                exc_info=exc,
            )
            crashes.unpin(paths, lines)
            return False
        else:
            self.error = ""
            self.reloads += 1
            metrics.RELOADS.labels("modules", "ok").inc()
            log.info("reloaded %s: %d functions", ", ".join(self.last), len(self.functions.table))
            return True
        finally:
            self.attempts += 1
            self._attempted.set()
            self._attempted = asyncio.Event()

    async def reload(self, changed: Mapping[str, Package], removed: Mapping[str, Package]) -> None:
        """Import ``changed`` afresh and drop ``removed``, then swap the table; on any error, undo and raise."""
        functions = self.functions
        assert functions.dispatcher is not None, "hot reload needs the worker role"
        saved = {name: _forget(pkg.qualified) for name, pkg in changed.items()}
        old_tables = [old for name in changed for old in _tables_of(saved[name].values())]
        for old in old_tables:
            metadata.remove(old)
        tables_before = set(metadata.tables)
        started: list[types.ModuleType] = []
        try:
            importlib.invalidate_caches()
            fresh = {name: _import(pkg) for name, pkg in changed.items()}
            current = functions.modules
            modules = {name: fresh.get(name, module) for name, module in current.items() if name not in removed}
            modules.update((name, module) for name, module in fresh.items() if name not in modules)
            table, swaps = functions.build(modules)  # the job table is swapped with this one
            for module in fresh.values():
                startup = getattr(module, "startup", None)
                if startup is not None:
                    await startup(functions.startup_arg)
                started.append(module)
        except BaseException:
            for module in reversed(started):
                await functions.shutdown(module)
            for name, pkg in changed.items():
                _forget(pkg.qualified)
                _restore(pkg.qualified, saved[name])
            for key in set(metadata.tables) - tables_before:
                metadata.remove(metadata.tables[key])
            for old in old_tables:
                metadata._add_table(old.name, old.schema, old)  # the very objects the old code queries
            raise
        replaced = [functions.modules[name] for name in [*changed, *removed] if name in functions.modules]
        functions.swap(modules, table, swaps)
        for pkg in removed.values():
            _forget(pkg.qualified)
        for module in reversed(replaced):
            await functions.shutdown(module)
        if set(metadata.tables) - tables_before or old_tables:
            try:  # a new or changed module brings its revisions: what start-up does with them, now
                await Schema.of(modules, self.db.config.migrate).prepare(self.db)
            except Exception as exc:  # the handlers will answer `unavailable` until the database is back
                log.warning("reload: cannot prepare the schema now: %s", exc)

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                await self.check()
            except Exception:  # the watcher itself must not die: log and scan again next period
                log.exception("module reload check failed")

    async def wait_attempts(self, count: int) -> None:
        """Return once ``count`` reload attempts have finished (for tests and tools waiting on an edit)."""
        while self.attempts < count:
            await self._attempted.wait()

    def start(self) -> None:
        self._task = asyncio.create_task(self.watch(), name="module-reload")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def describe(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "attempts": self.attempts,
            "reloads": self.reloads,
            "last": self.last,
            "error": self.error,
        }


@dataclass
class Reloading(Contribution):
    reloader: Reloader | None = None  # None unless modules.reload is on


@asynccontextmanager
async def lifespan(config: ModulesConfig, functions: Functions, db: Sql) -> AsyncIterator[Reloading]:
    """With ``modules.reload`` on (a worker): snapshot the module files now, watch them once listening."""
    if not config.reload:
        yield Reloading()
        return
    reloader = Reloader(config, functions, db, config.reload_poll)

    async def start() -> None:
        reloader.start()

    log.info("hot reload on: watching %d module packages every %gs", len(reloader.packages), reloader.period)
    try:
        yield Reloading(on_listen=[start], reloader=reloader)
    finally:
        await reloader.stop()


def _files(folder: Path) -> Files:
    files: Files = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d != "__pycache__" and not d.startswith(".")]
        for filename in filenames:
            if filename.endswith(".py"):
                path = os.path.join(dirpath, filename)
                try:
                    st = os.stat(path)
                except FileNotFoundError:  # deleted between the listing and the stat
                    continue
                files[path] = (st.st_size, st.st_mtime_ns)
    return files


def _drop_stale_bytecode(old: Files, new: Files) -> None:
    """A .pyc is checked against its source's size and mtime in whole seconds: an edit that keeps the size
    within the same second would load the old bytecode. Delete the cached bytecode of every changed file."""
    for path, stat in new.items():
        if old.get(path) != stat:
            try:
                os.unlink(importlib.util.cache_from_source(path))
            except (FileNotFoundError, NotImplementedError):
                pass


def _forget(qualified: str) -> dict[str, types.ModuleType]:
    """Take the package and its submodules out of ``sys.modules``; returns them."""
    taken = {
        name: module
        for name, module in list(sys.modules.items())
        if name == qualified or name.startswith(qualified + ".")
    }
    for name in taken:
        del sys.modules[name]
    return taken


def _restore(qualified: str, saved: dict[str, types.ModuleType]) -> None:
    """Put back what :func:`_forget` took, including the parent package's attribute that the import rebound."""
    sys.modules.update(saved)
    parent, _, child = qualified.rpartition(".")
    holder = sys.modules.get(parent)
    if holder is None:
        return
    if qualified in saved:
        setattr(holder, child, saved[qualified])
    elif hasattr(holder, child):
        delattr(holder, child)


def _import(pkg: Package) -> types.ModuleType:
    if pkg.qualified.startswith(BUILTIN_PREFIX):
        module = load(pkg.name, lambda: importlib.import_module(pkg.qualified), pkg.folder)
    else:
        module = load(pkg.name, lambda: _import_path(pkg.name, pkg.folder), pkg.folder)
    if not isinstance(getattr(module, "HANDLERS", None), Mapping):
        raise ModuleError(f"module {pkg.name}: its __init__.py needs HANDLERS = {{'name': function}}")
    return module


def _tables_of(modules: Any) -> list[sa.Table]:
    tables: dict[int, sa.Table] = {}
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, sa.Table) and value.metadata is metadata and value.key in metadata.tables:
                tables[id(value)] = value
    return list(tables.values())


def _describe(exc: BaseException) -> str:
    """One line: a module error's own (as start-up prints it), else the exception and where in module code."""
    return str(exc) if isinstance(exc, ConfigError) else crashes.summary(exc)
