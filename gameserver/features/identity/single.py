"""One session per player (``auth.single_session``; docs/PROTOCOL.md, "session.replaced").

When a login or ``session.bind`` binds a connection, :meth:`SingleSession.replace` closes the player's other gate
connections on every process: each gets the push ``session.replaced`` ``{"reason"}`` and is then closed normally
(WebSocket 1000, reason ``session replaced``). This process closes its own at once and publishes ``{"uid", "at",
"origin"}`` on ``session.replace`` (:meth:`Keys.session_control`); every other process closes the player's
connections bound before ``at``, so of two logins racing on two processes the later one stays.
"""

from __future__ import annotations

import json
import logging
import secrets
import time

from gameserver.bus.local import Bus
from gameserver.bus.sessions import Session, Sessions
from gameserver.errors import CloseCode
from gameserver.keys import Keys

log = logging.getLogger("gameserver.features.identity")

REPLACED_EVENT = "session.replaced"
REPLACED_REASON = "session replaced"


class SingleSession:
    """The ``single_session`` resource; :meth:`replace` does nothing unless ``enabled``."""

    def __init__(self, sessions: Sessions, bus: Bus, keys: Keys, *, enabled: bool) -> None:
        self.sessions = sessions
        self.bus = bus
        self.channel = keys.session_control()
        self.enabled = enabled
        self.origin = secrets.token_hex(8)

    def start(self) -> None:
        if self.enabled:
            self.bus.subscribe(self.channel, self._received)

    def stop(self) -> None:
        if self.enabled:
            self.bus.unsubscribe(self.channel, self._received)

    def replace(self, session: Session, reason: str) -> None:
        """``session`` was just bound: close the player's other connections everywhere."""
        if not self.enabled or session.uid is None:
            return
        at = time.time_ns() // 1000
        session.bound_us = at
        self._close(session.uid, before=at, keep=session, reason=reason)
        body = {"uid": session.uid, "at": at, "origin": self.origin, "reason": reason}
        self.bus.publish(self.channel, json.dumps(body).encode())

    def _close(self, uid: int, *, before: int, keep: Session | None, reason: str) -> None:
        for other in self.sessions.of(uid):
            if other is keep or other.bound_us > before:
                continue
            other.push(REPLACED_EVENT, {"reason": reason})
            other.close(CloseCode.NORMAL, REPLACED_REASON)  # first: a resumable session learns why it ends
            other.unbind()
            log.info("uid %d: connection %s replaced by a new %s", uid, other.peer or other.id, reason)

    def _received(self, channel: str, payload: bytes) -> None:
        try:
            body = json.loads(payload)
            if body["origin"] == self.origin:
                return
            uid, at, reason = int(body["uid"]), int(body["at"]), str(body["reason"])
        except (ValueError, KeyError, TypeError):
            log.warning("auth: bad session.replace on %s: %r", channel, payload[:200])
            return
        self._close(uid, before=at, keep=None, reason=reason)
