"""The play-test console at ``http://127.0.0.1:8000/``: static HTML/JS/CSS (no build step) and a small JSON API.

The page calls functions over the WebSocket gate like a game client, logs in through ``/auth/*``, chats on
``/chat`` with a nonce, and shows the server's status and recent logs. Those come from this API:

| route | answer |
|---|---|
| ``GET /console/api/info`` | node, roles, bound ports, WebSocket paths and HTTP routes (what the page can offer) |
| ``GET /console/api/functions`` | every registered function with its arguments (:meth:`Entry.describe`) |
| ``GET /console/api/status`` | ``/healthz``'s details plus request and error totals, hot reload and game config state |
| ``GET /console/api/logs?after=N`` | the log lines numbered above N from an in-memory ring (``console.log_lines``) |

It shows logs and every function, so it is served only when HTTP listens on a loopback address, unless
``console.enabled = "always"`` (``"never"`` turns it off everywhere).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import asynccontextmanager
from importlib import resources as package_files
from typing import Any, Protocol

from aiohttp import web

from gameserver import __version__, metrics
from gameserver.config import Config
from gameserver.features.configserver import GameData
from gameserver.features.console.logring import LogRing
from gameserver.features.lifespan import Contribution, Process
from gameserver.features.reload import Reloader

log = logging.getLogger("gameserver.features.console")

STATIC = {
    "index.html": "text/html",
    "console.js": "text/javascript",
    "console.css": "text/css",
}
MAX_LOG_LINES = 500


def console_enabled(config: Config) -> bool:
    """Whether to serve the console: ``console.enabled``, and for ``auto`` a loopback HTTP address."""
    mode = config.console.enabled
    if mode == "never" or not config.http.enabled:
        return False
    return mode == "always" or is_loopback(config.server.host)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _static(name: str) -> bytes:
    return package_files.files(__package__).joinpath("static", name).read_bytes()


def _totals() -> dict[str, int]:
    ok = errors = 0
    for stats in list(metrics.FUNCTIONS.values()):
        ok += stats.ok
        errors += sum(stats.errors.values())
    return {"requests": ok + errors, "errors": errors}


def _gameserver_samples() -> dict[str, float]:
    """The scalar ``gameserver_*`` samples (counters and gauges, not histogram buckets) by name and labels."""
    samples: dict[str, float] = {}
    for family in metrics.REGISTRY.collect():
        if not family.name.startswith("gameserver_") or family.type == "histogram":
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


class Server(Process, Protocol):
    """What the console shows of the running process."""

    @property
    def ws_paths(self) -> Sequence[str]: ...

    @property
    def http_paths(self) -> Sequence[str]: ...

    def health(self) -> Awaitable[tuple[bool, dict[str, Any]]]: ...

    def functions(self) -> Sequence[Mapping[str, Any]]: ...


def routes(
    app: Server, config: Config, ring: LogRing, game: GameData | None, reloader: Reloader | None
) -> list[web.RouteDef]:
    async def page(request: web.Request) -> web.Response:
        name = request.match_info.get("name", "index.html")
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(body=_static(name), content_type=STATIC[name], headers={"Cache-Control": "no-cache"})

    async def info(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "version": __version__,
                "node": app.node,
                "profile": config.profile,
                "roles": list(app.roles),
                "ports": dict(app.ports),
                "ws_paths": sorted(app.ws_paths),
                "http_routes": sorted(set(app.http_paths)),
            }
        )

    async def functions(request: web.Request) -> web.Response:
        return web.json_response({"functions": sorted(app.functions(), key=lambda f: str(f["fn"]))})

    async def status(request: web.Request) -> web.Response:
        healthy, details = await app.health()
        return web.json_response(
            {
                "status": "ok" if healthy else "unhealthy",
                **details,
                **_totals(),
                "functions": len(app.functions()),
                "reload": reloader.describe() if reloader is not None else {"enabled": False},
                "game_config": game.describe() if game is not None else None,
                "metrics": _gameserver_samples(),
            }
        )

    async def logs(request: web.Request) -> web.Response:
        try:
            after = int(request.query.get("after", "0"))
            limit = min(MAX_LOG_LINES, int(request.query.get("limit", str(MAX_LOG_LINES))))
        except ValueError:
            raise web.HTTPBadRequest(reason="after and limit must be integers") from None
        return web.json_response({"next": ring.seq, "lines": ring.since(after, limit)})

    return [
        web.get("/", page),
        web.get("/console/api/info", info),
        web.get("/console/api/functions", functions),
        web.get("/console/api/status", status),
        web.get("/console/api/logs", logs),
        web.get("/console/{name}", page),
    ]


@asynccontextmanager
async def lifespan(
    config: Config, server: Server, *, game: GameData | None, reloader: Reloader | None
) -> AsyncIterator[Contribution]:
    """Serve the console (when :func:`console_enabled`) and keep recent log lines for it meanwhile."""
    if not console_enabled(config):
        yield Contribution()
        return
    ring = LogRing(config.console.log_lines)
    root = logging.getLogger()
    root.addHandler(ring)
    if not is_loopback(config.server.host):
        log.warning("play-test console enabled on %s: it shows logs and every function", config.server.host)
    try:
        yield Contribution(http_routes=routes(server, config, ring, game, reloader))
    finally:
        root.removeHandler(ring)
