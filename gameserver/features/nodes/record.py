"""One node's entry in the registry, and the rules for reading entries back: which are live, which to pick.

In Redis an entry is a hash of strings, so that a Lua script in openresty gets what it routes on with one
``HGET`` (seed 002): ``HGET gs:nodes.n1 addr.ws`` -> ``10.0.0.5:8881``. Fields:

- ``node``, ``instance`` (random per process start), ``roles`` (comma-separated), ``version``, ``host``
  (the machine's name), ``pid``, ``started`` (ms since the epoch, the node's clock);
- ``addr.<listener>``: ``host:port`` for a front to proxy to; ``url.<listener>``: what a client connects to;
- ``conn.<listener>``: open connections, ``inflight``: requests being handled, ``players``: bound players;
- ``heartbeat`` and ``expires``: ms since the epoch on the Redis server's clock, written by the registry.

Pure: no I/O, no clock (the callers pass ``now``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ADDR = "addr."
URL = "url."
CONN = "conn."
NOT_LOAD = frozenset({"http"})  # connections that do not count as load: scrapes, health checks, short requests
_RANDOM = random.Random()


def address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets (``[::1]:8881``) as URLs and nginx want it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class NodeRecord:
    node: str
    instance: str
    roles: tuple[str, ...]
    version: str
    host: str
    pid: int
    started: int
    addresses: Mapping[str, str] = field(default_factory=dict)
    urls: Mapping[str, str] = field(default_factory=dict)
    connections: Mapping[str, int] = field(default_factory=dict)
    inflight: int = 0
    players: int = 0
    heartbeat: int = 0
    expires: int = 0

    @property
    def load(self) -> int:
        """What :func:`least_loaded` compares: the players' connections (every listener but HTTP)."""
        return sum(count for name, count in self.connections.items() if name not in NOT_LOAD)

    def to_fields(self) -> dict[str, str]:
        """The hash fields a heartbeat writes (``heartbeat`` and ``expires`` are the registry's to add)."""
        fields = {
            "node": self.node,
            "instance": self.instance,
            "roles": ",".join(self.roles),
            "version": self.version,
            "host": self.host,
            "pid": str(self.pid),
            "started": str(self.started),
            "inflight": str(self.inflight),
            "players": str(self.players),
        }
        fields.update({ADDR + name: value for name, value in self.addresses.items()})
        fields.update({URL + name: value for name, value in self.urls.items()})
        fields.update({CONN + name: str(count) for name, count in self.connections.items()})
        return fields

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> NodeRecord | None:
        """The entry of a hash, or None if it is not one (empty: expired meanwhile; or written by something else)."""
        try:
            return cls(
                node=fields["node"],
                instance=fields["instance"],
                roles=tuple(role for role in fields.get("roles", "").split(",") if role),
                version=fields.get("version", ""),
                host=fields.get("host", ""),
                pid=int(fields.get("pid", 0)),
                started=int(fields.get("started", 0)),
                addresses=_with_prefix(fields, ADDR),
                urls=_with_prefix(fields, URL),
                connections={name: int(value) for name, value in _with_prefix(fields, CONN).items()},
                inflight=int(fields.get("inflight", 0)),
                players=int(fields.get("players", 0)),
                heartbeat=int(fields.get("heartbeat", 0)),
                expires=int(fields.get("expires", 0)),
            )
        except (KeyError, ValueError):
            return None

    def to_json(self) -> dict[str, Any]:
        """Everything, for operators (``GET /nodes``, ``gameserver nodes --json``)."""
        return {
            "node": self.node,
            "instance": self.instance,
            "roles": list(self.roles),
            "version": self.version,
            "host": self.host,
            "pid": self.pid,
            "started": self.started,
            "heartbeat": self.heartbeat,
            "expires": self.expires,
            "addresses": dict(self.addresses),
            "urls": dict(self.urls),
            "load": {"connections": dict(self.connections), "inflight": self.inflight, "players": self.players},
        }

    def public(self) -> dict[str, Any]:
        """What a client may see (``GET /nodes/pick``): where to connect, nothing internal, no load."""
        return {"node": self.node, "roles": list(self.roles), "urls": dict(self.urls)}


def _with_prefix(fields: Mapping[str, str], prefix: str) -> dict[str, str]:
    return {name[len(prefix) :]: value for name, value in fields.items() if name.startswith(prefix)}


def live(scored: Iterable[tuple[str, float]], now_ms: int) -> list[str]:
    """The node ids of a ``nodes`` sorted set (member, score) still live at ``now_ms``.

    A score is when the member's entry expires (its last heartbeat plus its own TTL, on the Redis clock), so
    nodes with different TTLs mix, and a reader needs to know none of them: an entry is live until that moment.
    """
    return [node for node, expires in scored if expires > now_ms]


def least_loaded(records: Sequence[NodeRecord], rng: random.Random | None = None) -> NodeRecord | None:
    """The record with the smallest :attr:`NodeRecord.load`; among equals one at random, so that nodes started
    together fill evenly. None for none."""
    if not records:
        return None
    lowest = min(record.load for record in records)
    return (rng or _RANDOM).choice([record for record in records if record.load == lowest])
