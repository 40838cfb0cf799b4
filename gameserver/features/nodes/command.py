"""``gameserver nodes``: the live nodes as this config's Redis and prefix show them, read directly (no HTTP)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence

from gameserver.config import Config
from gameserver.features.nodes.record import NodeRecord
from gameserver.features.nodes.store import NodeStore
from gameserver.keys import Keys
from gameserver.storage.kv import open_redis

COLUMNS = ("NODE", "ROLES", "VERSION", "HOST", "PID", "STARTED (UTC)", "CONNS", "INFLIGHT", "PLAYERS", "ADDRESSES")


def main(config: Config, *, role: str | None = None, as_json: bool = False) -> int:
    """Print the live nodes (``role`` only, if given) as a table or JSON; 0, or 1 if Redis cannot tell."""
    if not config.redis.url:
        print(
            "gameserver nodes: redis.url is not set, so each process keeps its registry in its own memory; "
            "GET /nodes on a running server shows that server (or set redis.url, --set redis.url=...)",
            file=sys.stderr,
        )
        return 1
    try:
        records = asyncio.run(read(config, role))
    except Exception as exc:
        print(f"gameserver nodes: cannot read the registry from Redis: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps({"nodes": [record.to_json() for record in records]}, indent=2))
    elif records:
        print(table(records))
    else:
        print(f"no live nodes under prefix {config.redis.prefix!r}" + (f" with role {role}" if role else ""))
    return 0


async def read(config: Config, role: str | None) -> list[NodeRecord]:
    redis = open_redis(config.redis)
    try:
        return await NodeStore(redis, Keys(config.redis.prefix)).live(role)
    finally:
        await redis.aclose()


def table(records: Sequence[NodeRecord]) -> str:
    rows = [COLUMNS]
    for r in records:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.started / 1000))
        addresses = " ".join(f"{name}={value}" for name, value in sorted(r.addresses.items()))
        rows.append(
            (
                r.node,
                ",".join(r.roles),
                r.version,
                r.host,
                str(r.pid),
                started,
                str(r.load),
                str(r.inflight),
                str(r.players),
                addresses,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    return "\n".join("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]) for row in rows)
