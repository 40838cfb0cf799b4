"""Moderation: mutes, bans, the word filter, player reports and the log of who did what (issue 16, item 5)."""
