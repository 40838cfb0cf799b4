from __future__ import annotations

from typing import Any

from gameserver.bus.sessions import Session
from gameserver.errors import Unauthorized
from gameserver.features.identity.revocations import Revocations
from gameserver.features.identity.single import SingleSession
from gameserver.features.moderation.store import Banned, Moderation
from modules.auth.replies import Bound


async def bind(
    token: str,
    *,
    session: Session,
    revocations: Revocations,
    moderation: Moderation | None = None,
    single_session: SingleSession | None = None,
    **_: Any,
) -> Bound:
    """Bind this connection to the token's player. Returns {uid}; raises unauthorized for a bad or revoked token,
    banned for a banned player."""
    claims = revocations.authenticate(token)
    await revocations.confirm(claims)
    if moderation is not None:
        sanction = await moderation.banned(claims.uid)
        if sanction is not None:
            raise Banned(sanction)
    if not revocations.allows(claims):  # revoked while SQL was read
        raise Unauthorized("token revoked")
    session.bind(claims.uid, claims)
    if single_session is not None:
        single_session.replace(session, "bind")  # auth.single_session: the player's other connections close
    await session.bound()  # answered once pushes from any process reach this connection
    return {"uid": claims.uid}
