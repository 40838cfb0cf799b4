"""A connected client as the worker sees it: who it is, and how to send it a message.

The gate's endpoint (``gameserver/drivers/gate.py``) subclasses :class:`Session`, and so may a remote gate's
proxy: the dispatcher needs an id, a uid, a token bucket and :meth:`Session.send`, no socket. Handlers get the
caller's session as the injected ``session`` and never see its socket. :class:`Sessions` finds a player's
connections for pushes (PROTOCOL.md: server push ``{"event", "data"}``) and tells its :class:`Presence` (the
Redis bus) when a player's first connection binds here and when their last one goes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from gameserver.protocol.codec import Format
from gameserver.protocol.envelope import push_message
from gameserver.ratelimit import TokenBucket

if TYPE_CHECKING:
    from gameserver.features.identity.tokens import Claims

_ids = itertools.count(1)

BIND_TIMEOUT = 2.0  # seconds :meth:`Session.bound` waits for the bus; then the login goes on without it


class Presence(Protocol):
    """Told which players have connections bound in this process (:class:`~gameserver.bus.redispubsub.RedisBus`
    subscribes to their pushes meanwhile)."""

    def online(self, uid: int) -> None:
        """``uid``'s first connection here was bound."""

    def offline(self, uid: int) -> None:
        """``uid``'s last connection here was unbound or closed."""

    async def ready(self, uid: int, timeout: float) -> bool:
        """Wait until pushes to ``uid`` from any process reach this one; False after ``timeout`` seconds."""
        ...


class Watcher(Protocol):
    """Told when a uid's first connection here binds and when its last one goes."""

    def online(self, uid: int) -> None: ...

    def offline(self, uid: int) -> None: ...


class Session:
    """Identity and output of one client connection.

    Subclasses implement :meth:`send` and :meth:`close`. ``uid`` is None until ``session.bind`` (or a
    login that binds) sets it through :meth:`bind`.
    """

    # Slots: one per connection, thousands idle (issue 18). A subclass without __slots__ still gets a __dict__.
    __slots__ = ("id", "uid", "claims", "push_format", "sessions", "bucket", "pending", "bound_us")

    @property
    def scope(self) -> str:
        """Whom an idempotency key sent without a login belongs to, if not this process's connection (a remote
        gate's connection: the same on every worker that runs the request)."""
        return ""

    @property
    def peer(self) -> str:
        """The TCP peer, "host:port", for logs ("" without one)."""
        return ""

    @property
    def remote(self) -> str:
        """The client's host (behind a trusted proxy, the one it forwarded): per-address limits such as failed
        logins and registrations."""
        return ""

    def __init__(self, sessions: Sessions, bucket: TokenBucket) -> None:
        self.id = next(_ids)
        self.uid: int | None = None
        self.claims: Claims | None = None  # of the token or login that bound it: refresh, revocation
        self.push_format = Format.MSGPACK
        self.sessions = sessions
        self.bucket = bucket
        self.pending = 0  # requests of this connection being handled (kept by the dispatcher)
        self.bound_us = 0  # when a login or bind last bound it (µs since the epoch): auth.single_session

    def is_open(self) -> bool:
        """False once the connection is closing or gone: nothing sent to it arrives any more."""
        return True

    def idle(self) -> None:
        """Called by the dispatcher when the last pending request of this connection has been answered."""

    def send(self, message: dict[str, Any], fmt: Format) -> None:
        """Encode and queue one message; raises TypeError/ValueError if ``message`` has no wire form."""
        raise NotImplementedError

    def close(self, code: int = 1000, reason: str = "") -> None:
        raise NotImplementedError

    def resumable(self) -> dict[str, Any] | None:
        """After a login or bind that asked for resume: make this session survive a dropped connection
        (docs/PROTOCOL.md, "Resume"); its ``resume`` object for the reply, or None (not a gate connection, or the
        gate adds it to the reply itself)."""
        return None

    def push(self, event: str, data: Any) -> None:
        self.send(push_message(event, data), self.push_format)

    def bind(self, uid: int, claims: Claims | None = None) -> None:
        """Attach this connection to a player: later requests without a token act as ``uid``.

        Args:
            claims: of the token (or the login) that proves it; a revocation closes a connection bound without.
        """
        if self.uid is not None and self.uid != uid:
            self.sessions.discard(self)
        self.uid = uid
        self.claims = claims
        if self.is_open():  # a login that finishes after its client left must not leave a dead session bound
            self.sessions.add(self)

    async def bound(self, timeout: float = BIND_TIMEOUT) -> bool:
        """After :meth:`bind`: wait until pushes to this player from any process reach this connection.

        Immediate in one process; with the Redis bus, until Redis confirmed the subscription to the player's
        pushes. A login handler awaits it before answering, so that the client's reply means pushes arrive.
        Returns False (logged) if that took over ``timeout`` seconds: the connection stays bound and gets the
        pushes of this process.
        """
        presence = self.sessions.presence
        if presence is None or self.uid is None:
            return True
        return await presence.ready(self.uid, timeout)

    def unbind(self) -> None:
        self.sessions.discard(self)
        self.uid = None
        self.claims = None


class Sessions:
    """The bound sessions of this process, by uid; ``presence`` (if set) hears a uid's first and last."""

    def __init__(self) -> None:
        self._by_uid: dict[int, set[Session]] = {}
        self.presence: Presence | None = None
        self.watchers: list[Watcher] = []  # also told a uid's first and last here (presence in Redis)

    def add(self, session: Session) -> None:
        uid = session.uid
        assert uid is not None
        group = self._by_uid.get(uid)
        if group is None:
            group = self._by_uid[uid] = set()
            if self.presence is not None:
                self.presence.online(uid)
            for watcher in self.watchers:
                watcher.online(uid)
        group.add(session)

    def discard(self, session: Session) -> None:
        if session.uid is None:
            return
        group = self._by_uid.get(session.uid)
        if group is not None:
            group.discard(session)
            if not group:
                del self._by_uid[session.uid]
                if self.presence is not None:
                    self.presence.offline(session.uid)
                for watcher in self.watchers:
                    watcher.offline(session.uid)

    def of(self, uid: int) -> Iterator[Session]:
        yield from tuple(self._by_uid.get(uid, ()))

    def push(self, uid: int, event: str, data: Any) -> int:
        """Send an event to every connection of ``uid`` here; returns how many got it."""
        sent = 0
        for session in self.of(uid):
            session.push(event, data)
            sent += 1
        return sent

    def __len__(self) -> int:
        return len(self._by_uid)
