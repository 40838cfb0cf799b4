"""What ``presence.*`` answers (the typed client SDKs read these: ``gameserver sdk``)."""

from typing import TypedDict


class PlayerPresence(TypedDict):
    uid: int
    online: bool
    last_seen: int | None  # ms since the epoch; now while online, null if never seen


class Presences(TypedDict):
    players: list[PlayerPresence]


class Unwatched(TypedDict):
    count: int
