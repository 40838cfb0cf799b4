"""The process: resources, the function table, and the roles as listeners and tasks under one lifespan.

Roles (``server.roles``, ``--roles``): ``gate`` (TCP 8880, WebSocket 8881 ``/`` and ``/gate``), ``chat``
(TCP 8890, WebSocket ``/chat``), ``auth`` (token checks, ``/auth/*``), ``worker`` (runs the handlers).
Every process also serves HTTP (8000: ``/healthz``, ``/metrics`` and the roles' routes) unless
``http.enabled`` is false.

Shutdown (PROTOCOL.md, "Shutdown"): stop accepting, answer the requests already received (up to
``server.shutdown_grace``), close WebSockets with 1001 and raw sockets after their replies, close the
resources in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import types
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from gameserver import metrics
from gameserver.bus.local import LocalBus
from gameserver.config import Config
from gameserver.dispatch.dispatcher import Authenticate, Dispatcher
from gameserver.dispatch.registry import Entry, build_table, discover, settings_of
from gameserver.drivers.forwarded import parse_networks
from gameserver.drivers.gate import TcpGateConnection, WsGateSession
from gameserver.drivers.http import APP_KEY, HttpListener, build_http_app
from gameserver.drivers.listener import Listener
from gameserver.drivers.upgrade import Route, WebSocketConnection
from gameserver.errors import ConfigError
from gameserver.features import configserver, console, reload
from gameserver.features.chat import setup as setup_chat
from gameserver.features.identity.feature import setup as setup_auth
from gameserver.features.jobs.feature import setup as setup_jobs
from gameserver.features.mailbox.feature import setup as setup_mail
from gameserver.features.nodes.feature import setup as setup_nodes
from gameserver.resources import PER_REQUEST, Resources, open_resources
from gameserver.storage.migrate import Schema

log = logging.getLogger("gameserver.app")

CLOSE_SHARE = 0.2  # of server.shutdown_grace, kept for closing connections after the requests in flight ...
CLOSE_BUDGET = 1.0  # ... but at most this many seconds: WebSocket clients answer the 1001 close in a round trip


Feature = Callable[["App"], Awaitable[None]]
"""A feature's set-up, run after the resources open and before the function table is built. It may add resources to
inject (``app.resources.extra``), HTTP routes (``app.http_routes``), WebSocket paths (``app.ws_routes``), listeners
to start (``app.listen_hooks``), the token check (``app.authenticate``), steps given the imported modules before
their ``startup`` (``app.table_hooks``), steps once every listener accepts (``app.ready_hooks``), steps before they
stop accepting (``app.drain_hooks``) and shutdown steps (``app.shutdown_hooks``, run in reverse before the resources
close)."""

TableHook = Callable[[Mapping[str, types.ModuleType]], Callable[[], None]]
"""Builds a table from the modules (raising :class:`ConfigError`) and returns the step that swaps it in."""

FEATURES: list[Feature] = [
    configserver.setup,
    reload.setup,
    setup_auth,
    console.setup,
    setup_jobs,
    setup_mail,
    setup_chat,
    setup_nodes,
]
"""The features every process sets up, in order; each checks ``app.roles`` for what it runs. A feature module
imports :class:`App` only for type checking (``if TYPE_CHECKING:``), so that this module can import it."""


class App:
    """One gameserver process.

    ``await app.start()`` opens everything and returns once every listener accepts (``app.ports`` has the
    bound ports; pass port 0 for any free port); ``await app.stop()`` shuts down gracefully.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.roles = tuple(config.server.roles)
        self.node = config.server.node_id or f"{socket.gethostname()}-{os.getpid()}"
        self.ports: dict[str, int] = {}
        self.trusted_proxies = parse_networks(config.http.trusted_proxies)
        self.listeners: dict[str, Listener] = {}
        self.http_routes: list[web.RouteDef] = []
        self.ws_routes: dict[str, Route] = {}
        self.listen_hooks: list[Callable[[], Awaitable[None]]] = []
        # Tables built from the modules besides the handlers' (the job table): each hook checks the imported modules
        # (ConfigError, as build_table) and returns the step that swaps its table in. Start-up swaps at once, before
        # the modules' startup(); hot reload swaps with the handler table, once everything succeeded.
        self.table_hooks: list[TableHook] = []
        self.ready_hooks: list[Callable[[], Awaitable[None]]] = []  # e.g. the node registry's first heartbeat
        self.drain_hooks: list[Callable[[], Awaitable[None]]] = []  # e.g. leaving the node registry
        self.shutdown_hooks: list[Callable[[], Awaitable[None]]] = []
        self.authenticate: Authenticate | None = None
        self.started_at = 0.0
        self.dispatcher: Dispatcher | None = None
        self.table: dict[str, Entry] = {}
        self.modules: dict[str, types.ModuleType] = {}  # the started module packages (hot reload swaps them)
        self._stack = contextlib.AsyncExitStack()
        self.http: HttpListener | None = None  # the HTTP port, unless http.enabled is false
        self._stopping = asyncio.Event()
        self._resources: Resources | None = None

    @property
    def resources(self) -> Resources:
        assert self._resources is not None, "the app is not started"
        return self._resources

    async def start(self) -> None:
        config = self.config
        if "gate" in self.roles and "worker" not in self.roles:
            raise ConfigError("server.roles: gate without worker needs a bus to remote workers (not built yet)")
        self.started_at = time.time()
        try:
            self._resources = await open_resources(config, self._stack)
            resources = self._resources
            for feature in FEATURES:
                await feature(self)
            modules = discover(config.modules.paths, config.modules.disabled)  # importing declares their tables
            # The modules' [modules.<name>] sections, checked now that their SETTINGS are known.
            config = self.config = resources.config = config.bind_modules(
                settings_of(modules), ignored=config.modules.disabled
            )
            # Upgrades the schema (embedded server) or checks it (db.migrate), or defers that while the db is down.
            await resources.db.start(Schema.of(modules, config.db.migrate).prepare)
            if "worker" in self.roles:
                # Only a worker runs handlers, so only a worker checks them against the resources it injects.
                injectable = set(resources.injectable()) | set(PER_REQUEST)
                self.table = build_table(modules, injectable=injectable, default_timeout=config.worker.timeout)
                self.dispatcher = Dispatcher(
                    self.table,
                    resources.injectable(),
                    max_inflight=config.worker.max_inflight,
                    node=self.node,
                    log_requests=config.log.requests,
                )
                if self.authenticate is not None:
                    self.dispatcher.authenticate = self.authenticate
                dispatcher = self.dispatcher
                metrics.INFLIGHT.set_function(lambda: dispatcher.inflight)
                assert isinstance(resources.bus, LocalBus)
                resources.bus.attach(self.dispatcher)
                for swap in [table_hook(modules) for table_hook in self.table_hooks]:
                    swap()
                self._stack.push_async_callback(self._shutdown_modules)
                for name, module in modules.items():
                    startup = getattr(module, "startup", None)
                    if startup is not None:
                        await startup(resources)
                    self.modules[name] = module
            await self._start_listeners()
            for hook in self.ready_hooks:
                await hook()
        except BaseException:
            for listener in self.listeners.values():  # those that started before the failure
                await listener.close(0)
            await self._stack.aclose()
            raise
        log.info("node %s started: roles %s, ports %s", self.node, ",".join(self.roles), self.ports)

    def _listener_defaults(self) -> dict[str, Any]:
        gate = self.config.gate
        return {
            "max_connections": gate.max_connections,
            "max_per_address": gate.max_per_address,
            "proxy_protocol": gate.proxy_protocol,
            "idle_timeout": gate.idle_timeout,
            "handshake_timeout": gate.handshake_timeout,
            "write_buffer": gate.write_buffer,
            "config": self.config,
            "sessions": self.resources.sessions,
            "submit": self.resources.bus.submit,
            "ws_routes": self.ws_routes,
            "trusted_proxies": self.trusted_proxies,
        }

    async def _start_listeners(self) -> None:
        config = self.config
        host = config.server.host
        if "gate" in self.roles:
            gate_route = Route(WsGateSession, config.gate.max_frame)
            self.ws_routes["/"] = self.ws_routes["/gate"] = gate_route
            await self.listen("gate-tcp", TcpGateConnection, config.gate.tcp_port)
        for hook in self.listen_hooks:
            await hook()
        if self.ws_routes:
            ws_proxy = config.gate.ws_proxy_protocol
            await self.listen("ws", WebSocketConnection, config.gate.ws_port, proxy_protocol=ws_proxy)
        if config.http.enabled:
            http_app = build_http_app(
                self.health,
                self.http_routes,
                max_body=config.http.max_body,
                rate=config.http.rate,
                burst=config.http.burst,
                handler_timeout=config.http.handler_timeout,
                trusted_proxies=self.trusted_proxies,
            )
            http_app[APP_KEY] = self
            http = HttpListener(
                http_app,
                max_connections=config.http.max_connections,
                header_timeout=config.http.header_timeout,
                max_per_address=config.http.max_per_address,
                trusted_proxies=self.trusted_proxies,
            )
            self.ports["http"] = await http.start(host, config.http.port)
            self.http = http

    async def listen(self, name: str, factory: Callable[[Listener], Any], port: int, **settings: Any) -> Listener:
        """Start a listener on ``server.host``; ``settings`` override the gate's limits and add driver context."""
        listener = Listener(name, factory, **{**self._listener_defaults(), **settings})
        self.ports[name] = await listener.start(self.config.server.host, port)
        self.listeners[name] = listener
        return listener

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Every started role and backend, each "ok" or what is wrong (``GET /healthz``)."""
        checks: dict[str, str] = {}
        resources = self.resources

        async def probe(name: str, check: Callable[[], Any]) -> None:
            try:
                async with asyncio.timeout(2.0):
                    await check()
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"{type(exc).__name__}: {exc}"[:200] or "error"

        await asyncio.gather(probe("db", resources.db.ping), probe("redis", resources.redis.ping))
        for name, listener in self.listeners.items():
            checks[name] = "ok" if listener.server is not None and listener.server.is_serving() else "not serving"
        healthy = all(value == "ok" for value in checks.values()) and not self._stopping.is_set()
        connections = {name: len(listener.connections) for name, listener in self.listeners.items()}
        if self.http is not None:
            connections["http"] = len(self.http.connections)
        details = {
            "node": self.node,
            "roles": list(self.roles),
            "checks": checks,
            "connections": connections,
            "inflight": self.dispatcher.inflight if self.dispatcher else 0,
            "uptime": round(time.time() - self.started_at, 3),
        }
        return healthy, details

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait_stopping(self) -> None:
        await self._stopping.wait()

    async def stop(self) -> None:
        """Graceful shutdown within ``server.shutdown_grace`` seconds."""
        self._stopping.set()
        grace = self.config.server.shutdown_grace
        deadline = time.monotonic() + grace
        # Before the listeners stop accepting: a front that reads the node registry stops sending players here.
        for hook in self.drain_hooks:
            await hook()
        for listener in self.listeners.values():
            listener.stop_accepting()
        # Requests get what the drain hooks left of the grace minus what closing the connections needs, so that
        # stop() returns within it.
        drain = max(0.0, deadline - time.monotonic() - min(CLOSE_BUDGET, grace * CLOSE_SHARE))
        if self.dispatcher is not None and not await self.dispatcher.drain(drain):
            log.warning("shutdown: %d requests still running after %gs; cancelling", self.dispatcher.inflight, drain)
            await self.dispatcher.cancel_all()
        remaining = max(0.0, deadline - time.monotonic())
        await asyncio.gather(*(listener.close(remaining) for listener in self.listeners.values()))
        for hook in reversed(self.shutdown_hooks):
            await hook()
        if self.http is not None:
            await self.http.close()
        await self._stack.aclose()
        log.info("node %s stopped", self.node)

    async def _shutdown_modules(self) -> None:
        """Each started module's ``shutdown(resources)``, in reverse; after a hot reload, the current versions'."""
        for name, module in reversed(self.modules.items()):
            shutdown = getattr(module, "shutdown", None)
            if shutdown is not None:
                try:
                    await shutdown(self.resources)
                except Exception:
                    log.exception("module %s: shutdown failed", name)
        self.modules.clear()

    def functions(self) -> Sequence[dict[str, Any]]:
        return [entry.describe() for entry in self.table.values()]
