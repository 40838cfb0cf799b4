"""The function table of a worker process: the started module packages, the tables built from them, the
dispatcher that runs them. Start-up fills it once; hot reload (``gameserver/features/reload.py``) swaps new
versions into it."""

from __future__ import annotations

import logging
import types
from collections.abc import Callable, Mapping
from typing import Any

from gameserver.dispatch.dispatcher import Dispatcher
from gameserver.dispatch.registry import Entry, build_table

log = logging.getLogger("gameserver.dispatch.functions")

TableBuilder = Callable[[Mapping[str, types.ModuleType]], Callable[[], None]]


class Functions:
    """The started modules and their tables.

    Args:
        resources: what handlers can ask for by name (the shared resources and what the features added), once
            every feature is in.
        per_request: the names the dispatcher adds per request (``uid``, ``session``, ...).
        default_timeout: a handler's deadline unless it sets its own (``worker.timeout``).
        builders: the features' other tables (the job table), built and swapped with the handlers'.
        startup_arg: what each module's ``startup()`` and ``shutdown()`` get (the resources).
    """

    def __init__(
        self,
        resources: Callable[[], Mapping[str, Any]],
        per_request: tuple[str, ...],
        *,
        default_timeout: float,
        builders: list[TableBuilder],
        startup_arg: Any,
    ) -> None:
        self.resources = resources
        self.per_request = per_request
        self.default_timeout = default_timeout
        self.builders = builders
        self.startup_arg = startup_arg
        self.modules: dict[str, types.ModuleType] = {}
        self.table: dict[str, Entry] = {}
        self.dispatcher: Dispatcher | None = None

    def build(self, modules: Mapping[str, types.ModuleType]) -> tuple[dict[str, Entry], list[Callable[[], None]]]:
        """The handler table of ``modules`` and the swaps of the other tables; raises ConfigError."""
        injectable = set(self.resources()) | set(self.per_request)
        table = build_table(modules, injectable=injectable, default_timeout=self.default_timeout)
        return table, [builder(modules) for builder in self.builders]

    async def start(
        self, modules: Mapping[str, types.ModuleType], dispatcher: Callable[[dict[str, Entry]], Dispatcher]
    ) -> None:
        """Build the tables, make the dispatcher, and start the modules (``startup(resources)``) in order."""
        table, swaps = self.build(modules)
        self.table = table
        self.dispatcher = dispatcher(table)
        for swap in swaps:
            swap()
        for name, module in modules.items():
            startup = getattr(module, "startup", None)
            if startup is not None:
                await startup(self.startup_arg)
            self.modules[name] = module

    def swap(
        self, modules: dict[str, types.ModuleType], table: dict[str, Entry], swaps: list[Callable[[], None]]
    ) -> None:
        """Swap in new versions (hot reload): requests from now on use them."""
        assert self.dispatcher is not None
        self.modules = modules
        self.table = table
        self.dispatcher.replace_table(table)
        for swap in swaps:
            swap()

    async def shutdown(self, module: types.ModuleType) -> None:
        shutdown = getattr(module, "shutdown", None)
        if shutdown is not None:
            try:
                await shutdown(self.startup_arg)
            except Exception:
                log.exception("module %s: shutdown failed", module.__name__)

    async def stop(self) -> None:
        """Each started module's ``shutdown(resources)``, in reverse; after a hot reload, the current versions'."""
        for module in reversed(list(self.modules.values())):
            await self.shutdown(module)
        self.modules.clear()
