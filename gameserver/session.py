"""A connected client as the worker sees it: who it is, and how to send it a message.

The drivers (``gate.py``, ``websocket.py``) subclass :class:`Session`; handlers get the caller's session
as the injected ``session`` and never see its socket. :class:`Sessions` finds a player's connections for
pushes (PROTOCOL.md: server push ``{"event", "data"}``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from gameserver.protocol.codec import Format
from gameserver.protocol.envelope import push_message
from gameserver.ratelimit import TokenBucket

_ids = itertools.count(1)


class Session:
    """Identity and output of one client connection.

    Subclasses implement :meth:`send` and :meth:`close`. ``uid`` is None until ``session.bind`` (or a
    login that binds) sets it through :meth:`bind`.
    """

    kind = "session"
    peer = ""  # the client's address, "host:port" (drivers set it): per-address limits such as failed logins

    def __init__(self, sessions: Sessions, bucket: TokenBucket) -> None:
        self.id = next(_ids)
        self.uid: int | None = None
        self.push_format = Format.MSGPACK
        self.sessions = sessions
        self.bucket = bucket

    def send(self, message: dict[str, Any], fmt: Format) -> None:
        """Encode and queue one message; raises TypeError/ValueError if ``message`` has no wire form."""
        raise NotImplementedError

    def close(self, code: int = 1000, reason: str = "") -> None:
        raise NotImplementedError

    def push(self, event: str, data: Any) -> None:
        self.send(push_message(event, data), self.push_format)

    def bind(self, uid: int) -> None:
        """Attach this connection to a player: later requests without a token act as ``uid``."""
        if self.uid is not None and self.uid != uid:
            self.sessions.discard(self)
        self.uid = uid
        self.sessions.add(self)

    def unbind(self) -> None:
        self.sessions.discard(self)
        self.uid = None


class Sessions:
    """The bound sessions of this process, by uid."""

    def __init__(self) -> None:
        self._by_uid: dict[int, set[Session]] = {}

    def add(self, session: Session) -> None:
        assert session.uid is not None
        self._by_uid.setdefault(session.uid, set()).add(session)

    def discard(self, session: Session) -> None:
        if session.uid is None:
            return
        group = self._by_uid.get(session.uid)
        if group is not None:
            group.discard(session)
            if not group:
                del self._by_uid[session.uid]

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
