from __future__ import annotations

from typing import Any

from gameserver.bus.sessions import Session
from gameserver.errors import Unauthorized
from gameserver.features.identity.revocations import Revocations
from modules.auth.replies import Bound


async def bind(token: str, *, session: Session, revocations: Revocations, **_: Any) -> Bound:
    """Bind this connection to the token's player. Returns {uid}; raises unauthorized for a bad or revoked token."""
    claims = revocations.authenticate(token)
    await revocations.confirm(claims)
    if not revocations.allows(claims):  # revoked while SQL was read
        raise Unauthorized("token revoked")
    session.bind(claims.uid, claims)
    await session.bound()  # answered once pushes from any process reach this connection
    return {"uid": claims.uid}
