from __future__ import annotations

from typing import Any

from gameserver.auth.tokens import Tokens
from gameserver.session import Session


async def bind(token: str, *, session: Session, tokens: Tokens, **_: Any) -> dict[str, int]:
    """Bind this connection to the token's player. Returns {uid}; raises unauthorized for a bad token."""
    uid = tokens.verify(token)
    session.bind(uid)
    await session.bound()  # answered once pushes from any process reach this connection
    return {"uid": uid}
