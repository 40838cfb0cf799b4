"""What a feature is: an async context manager that takes the typed things it depends on and yields what it adds.

Starlette's ``lifespan`` and arq's ``on_startup(ctx)`` are the models. A feature's set-up runs before its
``yield``, its tear-down after; :class:`~gameserver.app.App` enters the features on one ``AsyncExitStack``, each
given what an earlier one yielded (the mail feature takes the jobs feature's ``Jobs``), so the order is the
composition's, checked by the type checker, and undone in reverse. A feature never sees the app: what it needs
of the running process is a narrow, typed view (:class:`Process`).
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from gameserver.drivers.connection import Driver, Limits
from gameserver.drivers.upgrade import Route

Hook = Callable[[], Awaitable[None]]

TableBuilder = Callable[[Mapping[str, types.ModuleType]], Callable[[], None]]
"""Builds a table from the module packages (raising :class:`~gameserver.errors.ConfigError`, as the handler
table does) and returns the step that swaps it in: at once at start-up, with the handler table on a hot reload."""


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    """A listener a feature runs (the chat edge's TCP port): started with the gate's, on ``server.host``."""

    name: str
    driver: Driver
    limits: Limits
    port: int
    setting: str = ""  # the config key of the port (named when it is taken)


@dataclass
class Contribution:
    """What a feature adds to the process.

    Attributes:
        resources: injected into handlers by name (``chat``, ``jobs``, ``mail``, ...).
        http_routes: served on the HTTP port.
        ws_routes: WebSocket paths on the WebSocket port.
        listeners: TCP listeners of its own.
        tables: tables built from the modules besides the handlers' (the job table), swapped in with them.
        on_listen: run once the database tables exist, before the listeners accept.
        on_ready: run once every listener accepts.
        on_drain: run first on a graceful stop, before the listeners stop accepting.
    """

    resources: dict[str, Any] = field(default_factory=dict)
    http_routes: list[web.RouteDef] = field(default_factory=list)
    ws_routes: dict[str, Route] = field(default_factory=dict)
    listeners: list[ListenerSpec] = field(default_factory=list)
    tables: list[TableBuilder] = field(default_factory=list)
    on_listen: list[Hook] = field(default_factory=list)
    on_ready: list[Hook] = field(default_factory=list)
    on_drain: list[Hook] = field(default_factory=list)


class Process(Protocol):
    """What a feature may read of the running process (the node registry's entry, the console's status)."""

    @property
    def node(self) -> str: ...

    @property
    def roles(self) -> tuple[str, ...]: ...

    @property
    def started_at(self) -> float: ...

    @property
    def ports(self) -> Mapping[str, int]: ...

    def connections(self) -> dict[str, int]:
        """Open connections by listener name (``http`` included)."""
        ...

    def inflight(self) -> int:
        """Requests being handled."""
        ...
