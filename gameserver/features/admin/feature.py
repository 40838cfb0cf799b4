"""The operations console's lifespans (composed in ``gameserver/app.py``).

:func:`log_shipping` is entered first, so that every other feature's start-up lines are shipped too: while it runs,
this process copies its log records to the shared stream (``admin.ship_logs``, :mod:`gameserver.logship`).
:func:`lifespan` is entered last, given what the other features offer on this process: while it runs, the process
samples its metrics for the graphs and closes the gate connections of a player an operator kicked, whichever process
the kick came from; it yields the console's routes (none when ``admin.enabled`` is false or HTTP is off).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
from gameserver.features.lifespan import Contribution, Process
from gameserver.features.mailbox.store import MailStore
from gameserver.features.moderation.store import Moderation
from gameserver.features.nodes.store import NodeStore
from gameserver.keys import Keys
from gameserver.logship import shipping
from gameserver.storage.sql import Sql

log = logging.getLogger("gameserver.features.admin")

KICKED_REASON = "kicked by an operator"
SUBSCRIBE_TIMEOUT = 2.0


def totals() -> dict[str, float]:
    """Requests and errors answered by this process so far (every function)."""
    ok = errors = 0
    for stats in list(metrics.FUNCTIONS.values()):
        ok += stats.ok
        errors += sum(stats.errors.values())
    return {"requests": ok + errors, "errors": errors}


@asynccontextmanager
async def log_shipping(config: Config, *, redis: Redis, keys: Keys, node: str) -> AsyncIterator[Contribution]:
    """Ship this process's log records to the shared stream while the process runs (``admin.ship_logs``)."""
    async with shipping(config, redis=redis, keys=keys, node=node):
        yield Contribution()


@asynccontextmanager
async def lifespan(
    config: Config,
    *,
    db: Sql,
    redis: Redis,
    keys: Keys,
    bus: Bus,
    sessions: Sessions,
    process: Process,
    revocations: Revocations | None = None,
    mail: MailStore | None = None,
    jobs: Jobs | None = None,
    nodes: NodeStore | None = None,
    moderation: Moderation | None = None,
) -> AsyncIterator[Contribution]:
    """Sample this process's numbers, carry out kicks, and serve the console. ``mail`` and ``jobs`` are None on a
    process without the worker role (their routes answer 404 there)."""
    settings = config.admin
    async with contextlib.AsyncExitStack() as stack:

        def snapshot() -> dict[str, float]:
            return {
                **totals(),
                "connections": sum(process.connections().values()),
                "inflight": process.inflight(),
                "players": len(sessions),
            }

        sampler = Sampler(
            redis,
            keys,
            node=process.node,
            snapshot=snapshot,
            interval=settings.metrics_interval,
            window=settings.metrics_window,
        )
        sampler.start()
        stack.push_async_callback(sampler.stop)

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

        routes = []
        if settings.enabled and config.http.enabled:
            context = Context(
                config=config,
                db=db,
                redis=redis,
                keys=keys,
                bus=bus,
                sessions=sessions,
                node=process.node,
                logins=AdminSessions(redis, keys, ttl=settings.session_ttl),
                passwords=Passwords.from_config(config.auth),
                throttle=Throttle(redis, window=settings.failure_window, refused=AdminLoginThrottled),
                revocations=revocations,
                mail=mail,
                push=bus.push,
                jobs=jobs,
                nodes=nodes,
                moderation=moderation,
            )
            routes = admin_routes(context)
        yield Contribution(http_routes=routes)
