from __future__ import annotations

from typing import Any

from gameserver.bus.sessions import Session
from gameserver.errors import BadRequest, ResumeFailed, Unauthorized
from gameserver.features.identity.revocations import Revocations
from gameserver.features.identity.single import SingleSession
from gameserver.features.moderation.store import Banned, Moderation
from modules.auth.replies import Bound, Resumed


async def bind(
    token: str,
    resume: bool = False,
    *,
    session: Session,
    revocations: Revocations,
    moderation: Moderation | None = None,
    single_session: SingleSession | None = None,
    **_: Any,
) -> Bound:
    """Bind this connection to the token's player. Returns {uid} (and, asked with resume, the session's resume token:
    docs/PROTOCOL.md, "Resume"); raises unauthorized for a bad or revoked token, banned for a banned player."""
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
    result: Bound = {"uid": claims.uid}
    if resume:
        info = session.resumable()
        if info is not None:
            result["resume"] = info  # type: ignore[typeddict-item]
    return result


async def resume(token: str, received: int, **_: Any) -> Resumed:
    """Resume a dropped session on this new connection (docs/PROTOCOL.md, "Resume"): answered by the gate process
    when it is the connection's first request; here it is not. Raises resume_failed."""
    raise ResumeFailed("invalid", "session.resume must be the first request on a new connection")


async def ack(received: int, **_: Any) -> dict[str, Any]:
    """Tell the server the client has every message up to seq ``received``. Returns {}. Answered by the gate
    process on a resumable connection; on another connection nothing is kept, and nothing is to free."""
    if received < 0:
        raise BadRequest("received must be >= 0")
    return {}
