"""The node registry's lifespan (composed in ``gameserver/app.py``): every process, whatever its roles.

It hands handlers the registry as ``nodes`` (``await nodes.pick("gate")``, ``await nodes.live()``), serves
``/nodes`` and ``/nodes/pick``, writes this process's entry once its listeners accept and every
``nodes.heartbeat`` seconds after, and removes it first thing on a graceful stop.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from redis.asyncio import Redis

from gameserver import __version__
from gameserver.bus.sessions import Sessions
from gameserver.config import Config
from gameserver.features.lifespan import Contribution, Process
from gameserver.features.nodes.advertise import advertised_host, listener_addresses, listener_urls
from gameserver.features.nodes.heartbeat import LEAVE_SHARE, LEAVE_TIMEOUT, Heartbeat
from gameserver.features.nodes.record import NodeRecord
from gameserver.features.nodes.routes import node_routes
from gameserver.features.nodes.store import NodeStore
from gameserver.keys import Keys


@dataclass
class Nodes(Contribution):
    heartbeat: Heartbeat = field(kw_only=True)


@asynccontextmanager
async def lifespan(
    config: Config, *, redis: Redis, keys: Keys, sessions: Sessions, process: Process
) -> AsyncIterator[Nodes]:
    store = NodeStore(redis, keys)
    instance = secrets.token_hex(8)  # tells this run's entry from another's under the same node id
    machine = socket.gethostname()
    addresses: dict[str, str] = {}
    urls: dict[str, str] = {}

    def snapshot() -> NodeRecord:
        return NodeRecord(
            node=process.node,
            instance=instance,
            roles=process.roles,
            version=__version__,
            host=machine,
            pid=os.getpid(),
            started=int(process.started_at * 1000),
            addresses=addresses,
            urls=urls,
            connections=process.connections(),
            inflight=process.inflight(),
            players=len(sessions),
        )

    heartbeat = Heartbeat(
        store,
        snapshot,
        interval=config.nodes.heartbeat,
        ttl=config.nodes.ttl,
        leave_timeout=min(LEAVE_TIMEOUT, config.server.shutdown_grace * LEAVE_SHARE),
    )

    async def ready() -> None:
        host = await advertised_host(config)  # the ports are bound now
        addresses.update(listener_addresses(host, process.ports))
        urls.update(listener_urls(host, process.ports, config.server.advertise_urls))
        await heartbeat.start()

    try:
        yield Nodes(
            resources={"nodes": store},
            http_routes=node_routes(store, config.nodes),
            on_ready=[ready],
            on_drain=[heartbeat.stop],
            heartbeat=heartbeat,
        )
    finally:
        if heartbeat.task is not None:  # a start-up that failed after the first beat; a stop left on drain
            await heartbeat.stop()
