"""Test a game module without starting a server (docs/modules-reference.md, "4. Test it").

:func:`harness` starts the app in the test's event loop with the ``worker`` and ``auth`` roles: no listener, no port, no
subprocess. It runs on the embedded backends (SQLite in a folder of the test's, the in-process Redis), migrates the
schema (the core's, the shipped modules' and yours) and loads your module from ``modules.paths``. Then either call
your handler directly with what the dispatcher would inject::

    async def test_grant(tmp_path):
        async with harness(tmp_path, modules={"paths": ["my_modules"]}) as game:
            uid = await game.player("ann")
            assert await grant(5, **game.ctx(uid)) == {"gems": 5}

or send a request through the real dispatcher (login, argument checks, error codes, idempotency keys), as a client
would, and read the reply and the pushes the caller got::

            reply = await game.request("gems.grant", {"gems": 5}, uid=uid, idem="k1")
            assert reply == {"id": 1, "ok": True, "data": {"gems": 5}}
            assert game.session(uid).pushes == [...]

Every resource a handler can ask for is there (``db``, ``redis``, ``config``, ``push``, ``session``, ``chat``,
``jobs``, ``mail``, ``game``, ``nodes``, ``http``, ``keys``, ...), the same objects a worker injects.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from gameserver.app import App
from gameserver.bus.sessions import Session
from gameserver.config import Config, load
from gameserver.features.identity.accounts import create_account
from gameserver.protocol.codec import Format, encode_json, encode_msgpack
from gameserver.ratelimit import TokenBucket
from gameserver.resources import PER_REQUEST

__all__ = ["Harness", "TestSession", "harness", "test_config"]

DEFAULTS: dict[str, dict[str, Any]] = {
    "server": {"roles": ["worker", "auth"], "node_id": "test", "shutdown_grace": 2.0},  # no listener: no gate, chat
    "http": {"enabled": False},
    "db": {"migrate": "upgrade"},
    "auth": {"hash_memory_kib": 8, "hash_time_cost": 1},  # argon2id at its cheapest: quick test accounts
}
UNLIMITED = 1e9


def test_config(data_dir: str | Path, **sections: Mapping[str, Any]) -> Config:
    """The harness's config: embedded backends under ``data_dir``, the worker role, no HTTP, cheap password
    hashing; ``sections`` override (``modules={"paths": [...], "gems": {"max": 5}}``, ``db={"url": ...}``). The
    environment and ``./config.toml`` are not read: a test sees the same config on every machine."""
    merged: dict[str, Any] = {name: dict(values) for name, values in DEFAULTS.items()}
    merged.setdefault("server", {})["data_dir"] = str(data_dir)
    for name, values in sections.items():
        merged[name] = {**merged.get(name, {}), **values}
    overrides = {f"{section}.{key}": value for section, values in merged.items() for key, value in values.items()}
    return load(None, env={}, overrides=overrides)


class TestSession(Session):
    """A connection without a socket: keeps what the server sends it (``replies`` by request id, ``pushes`` as
    ``(event, data)``). Messages are encoded as on the wire, so data without a wire form fails as it would there."""

    kind = "test"
    __test__ = False  # not a pytest test class

    def __init__(self, harness: Harness, fmt: Format = Format.MSGPACK) -> None:
        super().__init__(harness.app.resources.sessions, TokenBucket(UNLIMITED, UNLIMITED, time.monotonic()))
        self.format = fmt
        self.push_format = fmt
        self.replies: dict[int | None, dict[str, Any]] = {}
        self.pushes: list[tuple[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}

    def send(self, message: dict[str, Any], fmt: Format) -> None:
        encode_json(message) if fmt is Format.JSON else encode_msgpack(message)
        if "event" in message:
            self.pushes.append((message["event"], message["data"]))
            return
        request_id = message.get("id")
        self.replies[request_id] = message
        waiting = self._waiting.pop(request_id, None) if isinstance(request_id, int) else None
        if waiting is not None and not waiting.done():
            waiting.set_result(message)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)
        self.unbind()

    def expect(self, request_id: int) -> asyncio.Future[dict[str, Any]]:
        future = self._waiting[request_id] = asyncio.get_running_loop().create_future()
        return future


class Harness:
    """The started app and helpers around it (see the module's docstring). Made by :func:`harness`."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._ids = itertools.count(1)
        self._sessions: dict[int | None, TestSession] = {}

    @property
    def config(self) -> Config:
        return self.app.config

    @property
    def resources(self) -> dict[str, Any]:
        """What every handler can be injected, by name."""
        return self.app.resources.injectable()

    def __getattr__(self, name: str) -> Any:
        # game.db, game.redis, game.mail, game.chat, ...: the resources by name
        resources = self.app.resources.injectable()
        if name in resources:
            return resources[name]
        raise AttributeError(name)

    async def player(self, name: str = "player", *, world: int = 1) -> int:
        """A new account (display name ``name``, a unique username) in ``world``; returns its uid."""
        async with self.app.resources.db.transaction() as tx:
            return await create_account(
                tx, username=f"{name[:20]}{uuid.uuid4().hex[:8]}", password_hash="-", display_name=name, world=world
            )

    def session(self, uid: int | None = None) -> TestSession:
        """The connection of ``uid`` (bound to it, so pushes to ``uid`` land in its ``pushes``); one per uid.
        ``session()`` without a uid: an anonymous connection."""
        session = self._sessions.get(uid)
        if session is None:
            session = self._sessions[uid] = TestSession(self)
            if uid is not None:
                session.bind(uid)
        return session

    def ctx(self, uid: int | None = None, **extra: Any) -> dict[str, Any]:
        """The keyword arguments the dispatcher would pass a ``**kwargs`` handler for a request by ``uid`` (its
        client args aside): every resource, and ``uid``, ``session``, ``claims``, ``args``, ``log``; ``extra``
        replaces any of them (``ctx(uid, mail=other_store)``)."""
        session = self.session(uid)
        values = {
            **self.app.resources.injectable(),
            "uid": uid,
            "session": session,
            "claims": session.claims,
            "args": {},
            "log": logging.getLogger("gameserver.testing"),
        }
        assert set(PER_REQUEST) <= set(values)
        return {**values, **extra}

    async def request(
        self,
        fn: str,
        args: Mapping[str, Any] | None = None,
        *,
        uid: int | None = None,
        token: str | None = None,
        idem: str | None = None,
        session: TestSession | None = None,
    ) -> dict[str, Any]:
        """Send one request through the dispatcher as ``uid``'s connection (or ``session``) and return the reply
        map, ``{"id", "ok": true, "data"}`` or ``{"id", "ok": false, "error": {"code", "message"}}``."""
        dispatcher = self.app.dispatcher
        assert dispatcher is not None, "the harness runs the worker role"
        session = session or self.session(uid)
        request_id = next(self._ids)
        message: dict[str, Any] = {"id": request_id, "fn": fn, "args": dict(args or {})}
        if token is not None:
            message["token"] = token
        if idem is not None:
            message["idem"] = idem
        reply = session.expect(request_id)
        dispatcher.dispatch(message, session, session.format)
        return await reply


@contextlib.asynccontextmanager
async def harness(
    data_dir: str | Path, config: Config | None = None, **sections: Mapping[str, Any]
) -> AsyncIterator[Harness]:
    """Start the app for a test (see the module's docstring) and stop it after the block.

    Args:
        data_dir: a folder of the test's (pytest's ``tmp_path``): the SQLite file, mail, secrets.
        config: a whole config instead (e.g. :func:`test_config` with a MariaDB ``db.url``).
        sections: settings over :func:`test_config`'s.
    """
    app = App(config or test_config(data_dir, **sections))
    await app.start()
    try:
        yield Harness(app)
    finally:
        await app.stop()
