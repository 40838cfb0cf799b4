"""The operations console's lifespan, and its wiring into today's app (``FEATURES`` in ``gameserver/app.py``).

:func:`lifespan` takes what it needs as parameters and yields what it adds (routes); while it runs, this process
samples its metrics for the graphs and closes the gate connections of a player an operator kicked, whichever process
the kick came from. Log shipping (:func:`gameserver.logship.shipping`) is a lifespan of its own, entered first so that
the other features' start-up lines are shipped too. :func:`setup_log_shipping` and :func:`setup` are the thin adapters
to ``App`` until features are lifespans everywhere.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from redis.asyncio import Redis

from gameserver import metrics
from gameserver.bus.local import Bus
from gameserver.bus.sessions import Sessions
from gameserver.config import Config
from gameserver.errors import CloseCode
from gameserver.features.admin.api import Context, admin_routes
from gameserver.features.admin.errors import AdminLoginThrottled
from gameserver.features.admin.samples import Sampler
from gameserver.features.admin.sessions import AdminSessions
from gameserver.features.identity.passwords import Passwords
from gameserver.features.identity.revocations import Revocations
from gameserver.features.identity.throttle import Throttle
from gameserver.features.jobs import Jobs
from gameserver.features.mailbox.post import Push
from gameserver.features.mailbox.store import MailStore
from gameserver.features.nodes.store import NodeStore
from gameserver.keys import Keys
from gameserver.logship import shipping
from gameserver.storage.sql import Sql

if TYPE_CHECKING:
    from gameserver.app import App

log = logging.getLogger("gameserver.features.admin")

KICKED_REASON = "kicked by an operator"
SUBSCRIBE_TIMEOUT = 2.0


@dataclass
class AdminConsole:
    """What the console adds to the process."""

    http_routes: list[web.RouteDef] = field(default_factory=list)
    sampler: Sampler | None = None


def totals() -> dict[str, float]:
    """Requests and errors answered by this process so far (every function)."""
    ok = errors = 0
    for stats in list(metrics.FUNCTIONS.values()):
        ok += stats.ok
        errors += sum(stats.errors.values())
    return {"requests": ok + errors, "errors": errors}


@asynccontextmanager
async def lifespan(
    config: Config,
    *,
    db: Sql,
    redis: Redis,
    keys: Keys,
    bus: Bus,
    sessions: Sessions,
    node: str,
    load: Callable[[], dict[str, float]],
    revocations: Revocations | None = None,
    mail: MailStore | None = None,
    push: Push | None = None,
    jobs: Jobs | None = None,
    nodes: NodeStore | None = None,
) -> AsyncIterator[AdminConsole]:
    """Run the console's background work; yield its routes (none when ``admin.enabled`` is false or the process
    serves no HTTP). ``load()`` gives this process's numbers to sample (connections, requests in flight)."""
    settings = config.admin
    console = AdminConsole()
    async with contextlib.AsyncExitStack() as stack:

        def snapshot() -> dict[str, float]:
            return {**totals(), **load(), "players": len(sessions)}

        sampler = Sampler(
            redis,
            keys,
            node=node,
            snapshot=snapshot,
            interval=settings.metrics_interval,
            window=settings.metrics_window,
        )
        sampler.start()
        stack.push_async_callback(sampler.stop)
        console.sampler = sampler

        def kicked(channel: str, payload: bytes) -> None:
            try:
                uid = int(json.loads(payload)["uid"])
            except (ValueError, KeyError, TypeError):
                log.warning("admin: bad kick on %s: %r", channel, payload[:200])
                return
            for session in list(sessions.of(uid)):
                session.unbind()
                session.close(CloseCode.NORMAL, KICKED_REASON)
                log.info("uid %d kicked: gate connection closed", uid)

        bus.subscribe(keys.admin_kick(), kicked)
        stack.callback(bus.unsubscribe, keys.admin_kick(), kicked)
        await bus.subscribed([keys.admin_kick()], SUBSCRIBE_TIMEOUT)

        if settings.enabled and config.http.enabled:
            context = Context(
                config=config,
                db=db,
                redis=redis,
                keys=keys,
                bus=bus,
                sessions=sessions,
                node=node,
                logins=AdminSessions(redis, keys, ttl=settings.session_ttl),
                passwords=Passwords.from_config(config.auth),
                throttle=Throttle(redis, window=settings.failure_window, refused=AdminLoginThrottled),
                revocations=revocations,
                mail=mail,
                push=push,
                jobs=jobs,
                nodes=nodes,
            )
            console.http_routes = admin_routes(context)
        yield console


async def setup_log_shipping(app: App) -> None:
    """Enter :func:`gameserver.logship.shipping` with what today's app holds (first of the features)."""
    resources = app.resources
    stack = contextlib.AsyncExitStack()
    await stack.enter_async_context(shipping(app.config, redis=resources.redis, keys=resources.keys, node=app.node))
    app._stack.push_async_callback(stack.aclose)  # as setup() does, below


async def setup(app: App) -> None:
    """Enter :func:`lifespan` with what today's app holds."""
    resources = app.resources
    extra = resources.extra

    def load() -> dict[str, float]:
        connections = sum(len(listener.connections) for listener in app.listeners.values())
        if app.http is not None:
            connections += len(app.http.connections)
        return {"connections": connections, "inflight": app.dispatcher.inflight if app.dispatcher else 0}

    def push(uid: int, event: str, data: Any) -> None:
        resources.bus.push(uid, event, data)  # looked up per call: the bus may be swapped for a Redis one

    stack = contextlib.AsyncExitStack()
    console = await stack.enter_async_context(
        lifespan(
            app.config,
            db=resources.db,
            redis=resources.redis,
            keys=resources.keys,
            bus=resources.bus,
            sessions=resources.sessions,
            node=app.node,
            load=load,
            revocations=extra.get("revocations"),
            mail=extra.get("mail"),
            push=push,
            jobs=extra.get("jobs"),
            nodes=extra.get("nodes"),
        )
    )
    app.http_routes.extend(console.http_routes)
    # Left with the resources' stack, not the shutdown hooks: a start-up that fails later closes that stack (and only
    # it), and at a stop it closes after the hooks, so the records of the whole shutdown are shipped.
    app._stack.push_async_callback(stack.aclose)
