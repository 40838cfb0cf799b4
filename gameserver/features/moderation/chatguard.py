"""What the chat edge checks before it posts a line: the sender's mute and the word filter.

The mutes of the players logged in here are kept in memory (loaded at their chat login, updated by the
``mod.changed`` messages every process hears), so checking a line costs no round trip.
"""

from __future__ import annotations

import json
import logging
import time

from enums.errors import ModerationErrorCode
from gameserver.bus.local import Receiver
from gameserver.features.moderation.store import Moderation
from gameserver.features.moderation.wordfilter import WordFilter

log = logging.getLogger("gameserver.features.moderation")


class ChatGuard:
    """Mutes and the word filter, as one chat process applies them.

    Args:
        moderation: the mutes' store.
        words: the word filter.
        mode: ``mask`` (replace the words with ``*``), ``reject`` (refuse the line) or ``off``.
    """

    def __init__(self, moderation: Moderation, words: WordFilter, mode: str) -> None:
        self.moderation = moderation
        self.words = words
        self.mode = mode
        self.mutes: dict[int, int | None] = {}  # uid -> muted until (ms; None: until lifted)
        self.channel = moderation.keys.moderation_changes()

    def receiver(self) -> Receiver:
        return self._changed

    async def load(self, uid: int) -> None:
        """At a chat login: learn ``uid``'s mute."""
        sanction = await self.moderation.muted(uid)
        if sanction is None:
            self.mutes.pop(uid, None)
        else:
            self.mutes[uid] = sanction.until

    def forget(self, uid: int) -> None:
        self.mutes.pop(uid, None)

    def check(self, uid: int, text: str) -> tuple[str | None, str | None]:
        """``(text to post, None)``, or ``(None, error code)`` for a muted sender or a rejected line."""
        if uid in self.mutes:
            until = self.mutes[uid]
            if until is None or until > time.time() * 1000:
                return None, ModerationErrorCode.MUTED
            del self.mutes[uid]
        if self.mode == "off" or not self.words:
            return text, None
        if self.mode == "reject":
            return (text, None) if self.words.check(text) else (None, ModerationErrorCode.FILTERED)
        return self.words.mask(text), None

    def _changed(self, channel: str, payload: bytes) -> None:
        try:
            body = json.loads(payload)
            uid, mute = int(body["uid"]), body["mute"]
        except (ValueError, KeyError, TypeError):
            log.warning("moderation: bad change on %s: %r", channel, payload[:200])
            return
        if mute is None:
            self.mutes.pop(uid, None)
        else:
            self.mutes[uid] = mute["until"]
