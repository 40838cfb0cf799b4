"""The process: resources, the features, the function table, and the roles as listeners under one lifespan.

Roles (``server.roles``, ``--roles``): ``gate`` (TCP 8880, WebSocket 8881 ``/`` and ``/gate``), ``chat``
(TCP 8890, WebSocket ``/chat``), ``auth`` (token checks, ``/auth/*``), ``worker`` (runs the handlers).
Every process also serves HTTP (8000: ``/healthz``, ``/metrics`` and the roles' routes) unless
``http.enabled`` is false.

Composition (:meth:`App._compose`) reads top to bottom: each feature is a lifespan
(``gameserver/features/lifespan.py``) given the typed things it depends on, entered on the app's one
``AsyncExitStack``; what it yields (resources, routes, listeners, tables, hooks) is gathered here, and nothing
else changes the app.

Shutdown (PROTOCOL.md, "Shutdown"): stop accepting and stop reading on every connection at once (a request
that still arrives is answered ``unavailable``, not run), answer the requests already running (up to
``server.shutdown_grace``), close each connection after its last reply (WebSockets with 1001), answer what is
still running at the end of the grace ``outcome_unknown``, close the resources in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from aiohttp import web

from gameserver import metrics
from gameserver.bus.local import LocalBus
from gameserver.bus.redispubsub import RedisBus
from gameserver.bus.remote import STATS as BUS_STATS
from gameserver.bus.remote import Gate, GateBus, Worker
from gameserver.config import Config
from gameserver.dispatch.dispatcher import Dispatcher
from gameserver.dispatch.functions import Functions
from gameserver.dispatch.registry import Entry, discover, settings_of
from gameserver.drivers.connection import Driver, Limits
from gameserver.drivers.forwarded import parse_networks
from gameserver.drivers.gate import GateContext, gate_driver, gate_endpoint
from gameserver.drivers.http import HttpListener, build_http_app
from gameserver.drivers.listener import Listener
from gameserver.drivers.upgrade import Route, websocket_driver
from gameserver.errors import ConfigError
from gameserver.features import configserver, console, reload
from gameserver.features.admin import feature as admin
from gameserver.features.chatedge.setup import lifespan as chat_lifespan
from gameserver.features.identity.feature import lifespan as identity_lifespan
from gameserver.features.jobs.feature import lifespan as jobs_lifespan
from gameserver.features.lifespan import Contribution, Hook, ListenerSpec
from gameserver.features.mailbox.feature import lifespan as mail_lifespan
from gameserver.features.moderation.feature import lifespan as moderation_lifespan
from gameserver.features.nodes.feature import lifespan as nodes_lifespan
from gameserver.features.online import lifespan as presence_lifespan
from gameserver.features.reload import Reloader
from gameserver.features.resume.feature import lifespan as resume_lifespan
from gameserver.features.resume.hub import Resumption
from gameserver.resources import PER_REQUEST, REMOTE_BUSES, Resources, open_resources, open_transport
from gameserver.storage.errors import backend_fault
from gameserver.storage.kv import describe_redis
from gameserver.storage.migrate import Schema

log = logging.getLogger("gameserver.app")

HEALTH_TIMEOUT = 2.0  # seconds a backend gets to answer /healthz's check; then it is reported hung
CLOSE_SHARE = 0.2  # of server.shutdown_grace, kept for closing connections after the requests in flight ...
CLOSE_BUDGET = 1.0  # ... but at most this many seconds: WebSocket clients answer the 1001 close in a round trip
TEARDOWN_MIN = 0.5  # seconds the features and resources get to close even when the grace is spent

C = TypeVar("C", bound=Contribution)


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
        # What the features contributed, in composition order (routes may be added before start, as tests do).
        self.features: list[Contribution] = []
        self.http_routes: list[web.RouteDef] = []
        self.ws_routes: dict[str, Route] = {}
        self.feature_listeners: list[ListenerSpec] = []
        self.on_listen: list[Hook] = []
        self.on_ready: list[Hook] = []
        self.on_drain: list[Hook] = []
        self.functions_table: Functions | None = None  # the worker role's function table
        self.worker: Worker | None = None  # takes requests from remote gates (server.bus redis or nats)
        self.reloader: Reloader | None = None  # with modules.reload
        self.resumption: Resumption | None = None  # the gate role's resumable sessions
        self.started_at = 0.0
        self._stack = contextlib.AsyncExitStack()
        self.http: HttpListener | None = None  # the HTTP port, unless http.enabled is false
        self._stopping = asyncio.Event()
        self._resources: Resources | None = None

    @property
    def resources(self) -> Resources:
        assert self._resources is not None, "the app is not started"
        return self._resources

    @property
    def dispatcher(self) -> Dispatcher | None:
        return self.functions_table.dispatcher if self.functions_table is not None else None

    @property
    def table(self) -> Mapping[str, Entry]:
        return self.functions_table.table if self.functions_table is not None else {}

    @property
    def gate(self) -> Gate | None:
        """The gate side of the remote bus: a process with the gate role and not the worker role."""
        bus = self._resources.bus if self._resources is not None else None
        return bus.gate if isinstance(bus, GateBus) else None

    async def start(self) -> None:
        config = self.config
        if "gate" in self.roles and "worker" not in self.roles and config.bus_backend not in REMOTE_BUSES:
            raise ConfigError(
                "server.roles: gate without worker needs server.bus = redis or nats to reach workers in other processes"
            )
        self.started_at = time.time()
        try:
            self._resources = await open_resources(config, self._stack)
            await self._compose(self._resources)
            await self._start_listeners()
            for hook in self.on_ready:
                await hook()
        except BaseException:
            for listener in self.listeners.values():  # those that started before the failure
                await listener.close(0)
            if self.http is not None:
                await self.http.close()
            await self._stack.aclose()
            raise
        log.info("node %s started: roles %s, ports %s", self.node, ",".join(self.roles), self.ports)

    async def _enter(self, feature: contextlib.AbstractAsyncContextManager[C]) -> C:
        """Enter a feature's lifespan and take in what it yields."""
        contribution = await self._stack.enter_async_context(feature)
        extra = self.resources.extra
        for name in contribution.resources:
            if name in extra:
                raise ConfigError(f"two features provide the resource {name!r}")
        extra.update(contribution.resources)
        self.features.append(contribution)
        self.http_routes.extend(contribution.http_routes)
        self.ws_routes.update(contribution.ws_routes)
        self.feature_listeners.extend(contribution.listeners)
        if self.functions_table is not None:
            self.functions_table.builders.extend(contribution.tables)
        self.on_listen.extend(contribution.on_listen)
        self.on_ready.extend(contribution.on_ready)
        self.on_drain.extend(contribution.on_drain)
        return contribution

    async def _compose(self, res: Resources) -> None:
        """The features in dependency order, then the modules and the function table (worker role)."""
        config, roles, enter = self.config, self.roles, self._enter
        worker = "worker" in roles
        if worker:
            functions = Functions(
                res.injectable, PER_REQUEST, default_timeout=config.worker.timeout, builders=[], startup_arg=res
            )
            self.functions_table = functions
            # The modules' shutdown() runs once the features are down (jobs no longer running), before the resources.
            self._stack.push_async_callback(functions.stop)
        await enter(admin.log_shipping(config, redis=res.redis, keys=res.keys, node=self.node))  # first: logs it all
        game = await enter(configserver.lifespan(config.game))
        moderation = await enter(moderation_lifespan(config.moderation, redis=res.redis, keys=res.keys, bus=res.bus))
        identity = await enter(
            identity_lifespan(
                config.auth,
                config.data_path,
                db=res.db,
                redis=res.redis,
                keys=res.keys,
                sessions=res.sessions,
                bus=res.bus,
                serve_accounts="auth" in roles,
                moderation=moderation,
            )
        )
        if "gate" in roles:
            resume = resume_lifespan(
                config.session,
                bus=res.bus,
                keys=res.keys,
                revocations=identity.revocations,
                moderation=moderation.store,
            )
            self.resumption = (await enter(resume)).resumption
        await enter(
            presence_lifespan(
                config.presence,
                config.notifications,
                redis=res.redis,
                keys=res.keys,
                bus=res.bus,
                sessions=res.sessions,
            )
        )
        if worker:
            self.reloader = (await enter(reload.lifespan(config.modules, functions, res.db))).reloader
        await enter(console.lifespan(config, self, game=game.game, reloader=self.reloader))
        if worker:
            jobs = await enter(
                jobs_lifespan(
                    config,
                    redis=res.open_redis(decode=False),
                    keys=res.keys,
                    in_process=res.fake_redis_server is not None,
                    injectable=res.injectable,
                    node=self.node,
                )
            )
            await enter(mail_lifespan(config.mail, config.mail_path, db=res.db, bus=res.bus, jobs=jobs.jobs))
        if "chat" in roles or worker:
            await enter(
                chat_lifespan(
                    config.chat,
                    redis=res.redis,
                    keys=res.keys,
                    bus=res.bus,
                    node=self.node,
                    revocations=identity.revocations,
                    serve="chat" in roles,
                    moderation=moderation,
                    shared=bool(config.redis.url),
                )
            )
        nodes = await enter(nodes_lifespan(config, redis=res.redis, keys=res.keys, sessions=res.sessions, process=self))
        await enter(
            admin.lifespan(
                config,
                db=res.db,
                redis=res.redis,
                keys=res.keys,
                bus=res.bus,
                sessions=res.sessions,
                process=self,
                revocations=identity.revocations,
                mail=res.extra.get("mail"),
                jobs=res.extra.get("jobs"),
                nodes=nodes.resources["nodes"],
                moderation=moderation.store,
            )
        )
        modules = discover(config.modules.paths, config.modules.disabled)  # importing declares their tables
        # The modules' [modules.<name>] sections, checked now that their SETTINGS are known.
        config = self.config = res.config = config.bind_modules(settings_of(modules), ignored=config.modules.disabled)
        # Upgrades the schema (embedded server) or checks it (db.migrate), or defers that while the db is down.
        await res.db.start(Schema.of(modules, config.db.migrate).prepare)
        if worker:

            def dispatcher(table: dict[str, Entry]) -> Dispatcher:
                made = Dispatcher(
                    table,
                    res.injectable(),
                    max_inflight=config.worker.max_inflight,
                    node=self.node,
                    log_requests=config.log.requests,
                    dev=config.server.dev,
                )
                made.authenticate = identity.authenticate
                metrics.INFLIGHT.set_function(lambda: made.inflight)
                assert isinstance(res.bus, LocalBus)
                res.bus.attach(made)
                return made

            await functions.start(modules, dispatcher)
            made = functions.dispatcher
            if isinstance(res.bus, RedisBus) and made is not None:  # redis or nats: serve other processes' gates too
                taker = Worker(
                    open_transport(config, res.bus.fanout, res.keys, res.fake_redis_server),
                    made,
                    res.sessions,
                    node=self.node,
                    batch=config.remote.batch,
                    touch_every=config.remote.reclaim_after / 3,
                )
                self._stack.push_async_callback(taker.close)  # stop() closes it first, after the drain
                await taker.start()
                self.worker = taker
        gate = self.gate
        if gate is not None:  # the gate role without the worker role: requests go to remote workers
            gate.node = self.node
            await gate.start()
            metrics.INFLIGHT.set_function(lambda: gate.inflight)

    def _gate_limits(self, proxy_protocol: bool) -> Limits:
        gate = self.config.gate
        return Limits(
            max_connections=gate.max_connections,
            max_per_address=gate.max_per_address,
            proxy_protocol=proxy_protocol,
            idle_timeout=gate.idle_timeout,
            handshake_timeout=gate.handshake_timeout,
            frame_timeout=gate.frame_timeout,
            write_buffer=gate.write_buffer,
        )

    async def _start_listeners(self) -> None:
        config = self.config
        res = self.resources
        for hook in self.on_listen:
            await hook()
        if "gate" in self.roles:
            gate = GateContext(res.bus.submit, res.sessions, config.gate.rate, config.gate.burst, self.resumption)
            route = Route(gate_endpoint(gate), config.gate.max_frame)
            self.ws_routes["/"] = self.ws_routes["/gate"] = route
            driver = gate_driver(gate, config.gate.max_frame)
            limits = self._gate_limits(config.gate.proxy_protocol)
            await self.listen("gate-tcp", driver, limits, config.gate.tcp_port, "gate.tcp_port")
        for spec in self.feature_listeners:
            await self.listen(spec.name, spec.driver, spec.limits, spec.port, spec.setting)
        if self.ws_routes:
            driver = websocket_driver(self.ws_routes, self.trusted_proxies)
            limits = self._gate_limits(config.gate.ws_proxy_protocol)
            await self.listen("ws", driver, limits, config.gate.ws_port, "gate.ws_port")
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
            http = HttpListener(
                http_app,
                max_connections=config.http.max_connections,
                header_timeout=config.http.header_timeout,
                max_per_address=config.http.max_per_address,
                trusted_proxies=self.trusted_proxies,
                backlog=config.server.backlog,
            )
            self.ports["http"] = await http.start(config.server.host, config.http.port)
            self.http = http

    async def listen(self, name: str, driver: Driver, limits: Limits, port: int, setting: str = "") -> Listener:
        """Start a listener on ``server.host``; ``setting`` is its port's config key (named if the port is taken)."""
        listener = Listener(
            name, driver, limits, trusted_proxies=self.trusted_proxies, backlog=self.config.server.backlog
        )
        self.ports[name] = await listener.start(self.config.server.host, port, setting)
        self.listeners[name] = listener
        return listener

    # The process as the features see it (gameserver/features/lifespan.py, Process; the console's Server).

    def connections(self) -> dict[str, int]:
        connections = {name: len(listener.connections) for name, listener in self.listeners.items()}
        if self.http is not None:
            connections["http"] = len(self.http.connections)
        return connections

    def inflight(self) -> int:
        """Requests being handled here, or (a gate without a worker) waiting for a remote worker's reply."""
        dispatcher = self.dispatcher
        if dispatcher is not None:
            return dispatcher.inflight
        gate = self.gate
        return gate.inflight if gate is not None else 0

    @property
    def ws_paths(self) -> Sequence[str]:
        return list(self.ws_routes)

    @property
    def http_paths(self) -> Sequence[str]:
        return [route.path for route in self.http_routes]

    def functions(self) -> Sequence[dict[str, Any]]:
        return [entry.describe() for entry in self.table.values()]

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Every started role and backend, each "ok" or what is wrong (``GET /healthz``)."""
        checks: dict[str, str] = {}
        resources = self.resources

        async def probe(name: str, check: Callable[[], Any], backend: str) -> None:
            scope = asyncio.timeout(HEALTH_TIMEOUT)
            try:
                async with scope:
                    await check()
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"{backend}: {backend_fault(exc, HEALTH_TIMEOUT if scope.expired() else None)}"

        probes = [
            probe("db", resources.db.ping, resources.db.where),
            probe("redis", resources.redis.ping, describe_redis(self.config.redis.url)),
        ]
        gate = self.gate
        broker = self.worker.transport if self.worker is not None else gate.transport if gate is not None else None
        if broker is not None:  # asked now, as the backends are: a cached state lags a broker that came back
            probes.append(probe("bus", broker.depth, f"{self.config.bus_backend} broker"))
        await asyncio.gather(*probes)
        for name, listener in self.listeners.items():
            checks[name] = "ok" if listener.server is not None and listener.server.is_serving() else "not serving"
        healthy = all(value == "ok" for value in checks.values()) and not self._stopping.is_set()
        details = {
            "node": self.node,
            "roles": list(self.roles),
            "checks": checks,
            "connections": self.connections(),
            "inflight": self.inflight(),
            "uptime": round(time.time() - self.started_at, 3),
        }
        if broker is not None:
            details["bus"] = {"backend": self.config.bus_backend, **BUS_STATS.snapshot()}
        return healthy, details

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait_stopping(self) -> None:
        await self._stopping.wait()

    async def stop(self) -> None:
        """Graceful shutdown within ``server.shutdown_grace`` seconds (see the module's docstring)."""
        self._stopping.set()
        grace = self.config.server.shutdown_grace
        deadline = time.monotonic() + grace
        # No new request from now on: nothing more is read on any connection, and a request that reaches the
        # dispatcher all the same (a remote gate's) is answered `unavailable`, not run. Idle connections close
        # now, the others after their last reply.
        if self.worker is not None:
            await self.worker.stop_taking()  # what it runs is answered; what waits in the broker goes to other workers
        dispatcher = self.dispatcher
        if dispatcher is not None:
            dispatcher.stop_taking()
        for listener in self.listeners.values():
            listener.drain()
        # Before the listeners stop accepting: a front that reads the node registry stops sending players here.
        for hook in self.on_drain:
            await hook()
        for listener in self.listeners.values():
            listener.stop_accepting()
        # Requests get what the drain hooks left of the grace minus what closing the connections needs, so that
        # stop() returns within it.
        drain = max(0.0, deadline - time.monotonic() - min(CLOSE_BUDGET, grace * CLOSE_SHARE))
        if dispatcher is not None and not await dispatcher.drain(drain):
            log.warning("shutdown: %d requests still running after %gs; cancelling", dispatcher.inflight, drain)
            await dispatcher.cancel_all(max(0.0, deadline - time.monotonic()))
        gate = self.gate
        if gate is not None and not await gate.drain(drain):
            log.warning("shutdown: %d requests still waiting for remote workers after %gs", gate.inflight, drain)
        if self.worker is not None:
            await self.worker.close()  # the last replies go out
        remaining = max(0.0, deadline - time.monotonic())
        await asyncio.gather(*(listener.close(remaining) for listener in self.listeners.values()))
        if self.http is not None:
            await self.http.close()
        # The features and resources close in reverse; a backend that hangs may not hold the exit past the grace.
        try:
            async with asyncio.timeout(max(TEARDOWN_MIN, deadline - time.monotonic())):
                await self._stack.aclose()
        except TimeoutError:
            log.warning("shutdown: closing the features and resources outlasted the grace; giving up on them")
        log.info("node %s stopped", self.node)
