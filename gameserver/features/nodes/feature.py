"""The node registry's set-up (``FEATURES`` in ``gameserver/app.py``): every process, whatever its roles.

It hands handlers the registry as ``nodes`` (``await nodes.pick("gate")``, ``await nodes.live()``), serves
``/nodes`` and ``/nodes/pick``, writes this process's entry once its listeners accept and every
``nodes.heartbeat`` seconds after, and removes it first thing on a graceful stop.
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import TYPE_CHECKING

from gameserver import __version__
from gameserver.features.nodes.advertise import advertised_host, listener_addresses, listener_urls
from gameserver.features.nodes.heartbeat import LEAVE_SHARE, LEAVE_TIMEOUT, Heartbeat
from gameserver.features.nodes.record import NodeRecord
from gameserver.features.nodes.routes import node_routes
from gameserver.features.nodes.store import NodeStore

if TYPE_CHECKING:
    from gameserver.app import App


async def setup(app: App) -> None:
    config = app.config
    resources = app.resources
    store = NodeStore(resources.redis, resources.keys)
    resources.extra["nodes"] = store
    app.http_routes.extend(node_routes(store, config.nodes))
    instance = secrets.token_hex(8)  # tells this run's entry from another's under the same node id
    machine = socket.gethostname()
    addresses: dict[str, str] = {}
    urls: dict[str, str] = {}

    def snapshot() -> NodeRecord:
        connections = {name: len(listener.connections) for name, listener in app.listeners.items()}
        if app.http is not None:
            connections["http"] = len(app.http.connections)
        return NodeRecord(
            node=app.node,
            instance=instance,
            roles=app.roles,
            version=__version__,
            host=machine,
            pid=os.getpid(),
            started=int(app.started_at * 1000),
            addresses=addresses,
            urls=urls,
            connections=connections,
            inflight=app.dispatcher.inflight if app.dispatcher is not None else 0,
            players=len(resources.sessions),
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
        addresses.update(listener_addresses(host, app.ports))
        urls.update(listener_urls(host, app.ports, config.server.advertise_urls))
        await heartbeat.start()

    app.ready_hooks.append(ready)
    app.drain_hooks.append(heartbeat.stop)
