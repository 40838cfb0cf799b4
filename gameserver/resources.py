"""The shared resources handed to handlers: opened once at start-up, closed in reverse at shutdown.

Handlers receive them as keyword arguments (seed 003's ``**kwargs``): ``config``, ``db``, ``redis``,
``http`` (an aiohttp client session), ``keys``, ``bus``, ``push`` and ``resources`` itself; per request the
dispatcher adds ``uid``, ``session``, ``log``, ``args`` (the client's args as sent) and ``claims`` (the
caller's token claims: of the request's ``token``, else of the connection's binding; None without either).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from redis.asyncio import Redis

from gameserver.bus.fanout import RedisFanout
from gameserver.bus.local import Bus, LocalBus
from gameserver.bus.redispubsub import RedisBus
from gameserver.bus.remote import Gate, GateBus
from gameserver.bus.sessions import Sessions
from gameserver.bus.streams import RedisStreams
from gameserver.config import Config
from gameserver.keys import Keys
from gameserver.storage.kv import open_redis
from gameserver.storage.sql import Sql

if TYPE_CHECKING:
    from gameserver.bus.nats import NatsStreams

PER_REQUEST = ("uid", "session", "log", "args", "claims")
REMOTE_BUSES = ("redis", "nats")  # server.bus values that carry requests between processes


@dataclass
class Resources:
    config: Config
    db: Sql
    redis: Redis
    http: aiohttp.ClientSession
    keys: Keys
    sessions: Sessions
    bus: Bus
    fake_redis_server: Any = None
    extra: dict[str, Any] = field(default_factory=dict)  # what the features yielded (``App._enter``): chat, jobs, ...

    def injectable(self) -> dict[str, Any]:
        """What every handler can ask for by name (the per-request names are added by the dispatcher)."""
        return {
            "config": self.config,
            "db": self.db,
            "redis": self.redis,
            "http": self.http,
            "keys": self.keys,
            "bus": self.bus,
            "push": self.bus.push,
            "resources": self,
            **self.extra,
        }

    def open_redis(self, *, decode: bool = True) -> Redis:
        """Another client of the same Redis (e.g. a binary one for pub/sub); the caller closes it."""
        return open_redis(self.config.redis, decode=decode, fake_server=self.fake_redis_server)


async def open_resources(config: Config, stack: contextlib.AsyncExitStack) -> Resources:
    """Open every resource; each is registered on ``stack`` so that closing it closes them in reverse."""
    config.data_path.mkdir(parents=True, exist_ok=True)
    fake_server = None
    if not config.redis.url:
        import fakeredis

        fake_server = fakeredis.FakeServer()
    db = Sql.open(config.db, config.data_path)
    stack.push_async_callback(db.close)
    kv = open_redis(config.redis, fake_server=fake_server)
    stack.push_async_callback(kv.aclose)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=config.http.timeout))
    stack.push_async_callback(http.close)
    sessions = Sessions()
    keys = Keys(config.redis.prefix)
    bus: LocalBus
    if config.bus_backend in REMOTE_BUSES:
        # One fan-out (one subscriber connection) per process, shared by pushes, the chat edge and a gate's answers.
        fanout = RedisFanout(open_redis(config.redis, decode=False, fake_server=fake_server))
        await fanout.start()
        roles = config.server.roles
        if "gate" in roles and "worker" not in roles:  # requests go to workers in other processes
            gate = Gate(
                open_transport(config, fanout, keys, fake_server),
                node=config.server.node_id,  # the app sets the id it settled on before it starts the gate
                timeout=config.request_timeout,
                max_inflight=config.remote.gate_inflight,
                queue_max=config.remote.queue_max,
                heartbeat=config.remote.heartbeat,
            )
            bus = GateBus(sessions, fanout, keys, gate)
        else:
            bus = RedisBus(sessions, fanout, keys)
    else:
        bus = LocalBus(sessions)
    stack.push_async_callback(bus.close)
    return Resources(
        config=config,
        db=db,
        redis=kv,
        http=http,
        keys=keys,
        sessions=sessions,
        bus=bus,
        fake_redis_server=fake_server,
    )


def open_transport(
    config: Config, fanout: RedisFanout, keys: Keys, fake_server: Any = None
) -> RedisStreams | NatsStreams:
    """The broker between gates and workers that ``server.bus`` names (redis or nats); the caller closes it."""
    remote = config.remote
    if config.bus_backend == "nats":
        from gameserver.bus.nats import NatsStreams, subject_prefix  # nats-py only where it is used

        prefix = subject_prefix(config.redis.prefix)
        return NatsStreams(remote.nats_url, prefix, reclaim_after=remote.reclaim_after, gate_ttl=remote.gate_ttl)
    return RedisStreams(
        open_redis(config.redis, decode=False, fake_server=fake_server),
        fanout,
        keys,
        reclaim_after=remote.reclaim_after,
        gate_ttl=remote.gate_ttl,
        mid_ttl=remote.mid_ttl,
    )
