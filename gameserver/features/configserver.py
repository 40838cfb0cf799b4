"""The config server (seed 003, "Config"): the game's data config served at ``GET /config``, re-read when it changes.

``game.config`` names a TOML or JSON file, or a folder of them: each file becomes the key of its name
(``items.toml`` -> ``"items"``), a subfolder a nested object. The whole is served as one JSON body with a
strong ``ETag`` (a hash of the body); ``If-None-Match`` with a current tag answers 304 (PROTOCOL.md, "HTTP").
Every ``game.poll`` seconds the files' sizes and modification times are compared with the last load; on a
change they are read again and served from then on, without a restart. A version that does not parse is
logged and skipped: the last good one stays current. A path that does not exist serves ``{}`` until it does.

Handlers see the same data through the injected ``game`` resource (``game.data``, ``game.etag``); the
server's own :class:`~gameserver.config.Config` stays frozen.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import tomllib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from gameserver import metrics
from gameserver.config import GameConfig
from gameserver.errors import ConfigError
from gameserver.features.lifespan import Contribution

log = logging.getLogger("gameserver.features.configserver")

SUFFIXES = (".toml", ".json")
Signature = tuple[tuple[str, int, int, int], ...]


class GameData:
    """The current game config: ``data`` (treat it as read-only), its JSON ``body`` and ``etag``.

    Args:
        path: the file or folder (``game.config``); "" serves an empty object.
    """

    def __init__(self, path: str = "") -> None:
        self.path = Path(path) if path else None
        self.data: Mapping[str, Any] = {}
        self.body = b"{}"
        self.etag = _etag(self.body)
        self.version = 0
        self.loaded_at = time.time()
        self.error = ""
        self._signature: Signature = ()

    def load(self) -> None:
        """Read the files now.

        Raises:
            ConfigError: the path is missing, or a file does not parse (the current data stays).
        """
        if self.path is None:
            return
        signature = _signature(self.path)
        data = read_game_config(self.path)
        body = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
        self._signature = signature
        self.error = ""
        if body == self.body:
            return
        self.data, self.body, self.etag = data, body, _etag(body)
        self.version += 1
        self.loaded_at = time.time()

    def check(self) -> bool:
        """Reload if a file changed since the last load; True if a new version is now served."""
        if self.path is None:
            return False
        try:
            if _signature(self.path) == self._signature:
                return False
        except OSError as exc:
            return self._failed(f"{self.path}: {exc}")
        version = self.version
        try:
            self.load()
        except ConfigError as exc:
            return self._failed(str(exc))
        if self.version == version:
            return False
        metrics.RELOADS.labels("game_config", "ok").inc()
        log.info("game config %s: version %d, etag %s", self.path, self.version, self.etag)
        return True

    def _failed(self, error: str) -> bool:
        if error != self.error:  # once per broken version, not every poll
            metrics.RELOADS.labels("game_config", "error").inc()
            log.error("game config not reloaded, still serving etag %s: %s", self.etag, error)
        self.error = error
        return False

    async def watch(self, period: float) -> None:
        """Check for changes every ``period`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(period)
            try:
                self.check()
            except Exception:  # never let the watcher die: the next poll tries again
                log.exception("game config check failed")

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path or ""),
            "etag": self.etag,
            "version": self.version,
            "loaded_at": self.loaded_at,
            "error": self.error,
        }


def read_game_config(path: Path) -> dict[str, Any]:
    """The data of a TOML/JSON file, or of a folder of them (file stem -> its data, subfolder -> nested).

    Raises:
        ConfigError: a missing path or a file that does not parse, naming the file.
    """
    if path.is_file():
        return _read_file(path)
    if not path.is_dir():
        raise ConfigError(f"game.config: {path} is neither a file nor a folder")
    data: dict[str, Any] = {}
    for child in sorted(path.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            data[child.name] = read_game_config(child)
        elif child.suffix in SUFFIXES:
            if child.stem in data:
                raise ConfigError(f"game.config: {child} and another file both define {child.stem!r}")
            data[child.stem] = _read_file(child)
    return data


def _read_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
        if path.suffix == ".json":
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise ConfigError(f"game.config: {path}: expected a JSON object")
            return value
        return tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ConfigError(f"game.config: {path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"game.config: {path}: {exc.strerror or exc}") from None


def _signature(path: Path) -> Signature:
    """Size, modification time and inode of every file (an editor's save-by-rename changes the inode)."""
    if not path.exists():
        return ()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    entries = []
    for file in files:
        st = file.stat()
        entries.append((str(file), st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(entries)


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(header: str, etag: str) -> bool:
    """``If-None-Match`` uses the weak comparison (RFC 9110, 13.1.2): ``W/"x"`` matches ``"x"``; ``*`` any."""
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def config_route(game: GameData) -> web.RouteDef:
    """``GET /config``: the current body with its ``ETag``, or 304 when the client has it already."""

    async def serve_config(request: web.Request) -> web.Response:
        headers = {"ETag": game.etag, "Cache-Control": "no-cache"}
        if etag_matches(request.headers.get("If-None-Match", ""), game.etag):
            return web.Response(status=304, headers=headers)
        return web.Response(body=game.body, content_type="application/json", headers=headers)

    return web.get("/config", serve_config)


@dataclass
class GameConfigFeature(Contribution):
    game: GameData = field(kw_only=True)


@asynccontextmanager
async def lifespan(settings: GameConfig) -> AsyncIterator[GameConfigFeature]:
    """Load the game config, inject it as ``game``, serve ``GET /config``, watch the files.

    A file that does not parse stops start-up. A path that does not exist (yet) serves ``{}`` with a warning,
    until it appears: a server started outside the project folder has no ``game/``.
    """
    game = GameData(settings.config)
    if game.path is not None and not game.path.exists():
        game.error = f"game.config: {game.path} does not exist (serving {{}} until it does)"
        log.warning("%s", game.error)
    else:
        game.load()
    feature = GameConfigFeature(resources={"game": game}, http_routes=[config_route(game)], game=game)
    if game.path is None:
        yield feature
        return
    task = asyncio.create_task(game.watch(settings.poll), name="game-config-watch")
    try:
        yield feature
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
