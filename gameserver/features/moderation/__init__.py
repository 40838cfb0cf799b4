"""Moderation: mutes, bans, the word filter, player reports and the log of who did what (issue 16, item 5)."""

from gameserver.features.moderation.store import Banned, Moderation, Sanction

__all__ = ["Banned", "Moderation", "Sanction"]
