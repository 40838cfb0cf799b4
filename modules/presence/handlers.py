from __future__ import annotations

from typing import Any

from gameserver.config import Config
from gameserver.errors import BadRequest
from gameserver.features.online import PresenceTracker
from modules.presence.replies import PlayerPresence, Presences, Unwatched


def _uids(uids: Any, config: Config) -> list[int]:
    limit = config.presence.max_watch
    if not isinstance(uids, list) or not all(type(uid) is int and uid > 0 for uid in uids):
        raise BadRequest("uids: expected a list of players' uids")
    if len(uids) > limit:
        raise BadRequest(f"uids: expected at most {limit}")
    return list(dict.fromkeys(uids))


def _shown(found: dict[int, dict[str, Any]]) -> Presences:
    players = [
        PlayerPresence(uid=uid, online=state["online"], last_seen=state["last_seen"]) for uid, state in found.items()
    ]
    return {"players": players}


async def get(uids: list[int], *, presence: PresenceTracker, config: Config, **_: Any) -> Presences:
    """Returns {"players": [{"uid", "online", "last_seen"}]}; last_seen (ms) is null for a player never seen."""
    return _shown(await presence.get(_uids(uids, config)))


async def subscribe(uids: list[int], *, uid: int, presence: PresenceTracker, config: Config, **_: Any) -> Presences:
    """Get presence.changed pushes about these players. Returns their presence now, as presence.get."""
    wanted = _uids(uids, config)
    await presence.watch(uid, wanted)
    return _shown(await presence.get(wanted))


async def unsubscribe(uids: list[int], *, uid: int, presence: PresenceTracker, config: Config, **_: Any) -> Unwatched:
    """Stop the presence.changed pushes about these players. Returns {"count"} of uids given."""
    wanted = _uids(uids, config)
    await presence.unwatch(uid, wanted)
    return {"count": len(wanted)}
