"""The resume feature's lifespan (composed in ``gameserver/app.py`` for processes with the gate role)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from gameserver.bus.local import Bus
from gameserver.config import SessionConfig
from gameserver.features.identity.revocations import Revocations
from gameserver.features.lifespan import Contribution
from gameserver.features.moderation.store import Moderation
from gameserver.features.resume.hub import Resumption
from gameserver.keys import Keys


@dataclass
class Resume(Contribution):
    resumption: Resumption = field(kw_only=True)


@asynccontextmanager
async def lifespan(
    config: SessionConfig, *, bus: Bus, keys: Keys, revocations: Revocations, moderation: Moderation | None
) -> AsyncIterator[Resume]:
    """Hear the other gate processes' hand-overs; at the drain, end the dropped sessions."""
    resumption = Resumption(config, bus=bus, keys=keys, revocations=revocations, moderation=moderation)
    await resumption.start()

    async def drain() -> None:
        resumption.drain()

    try:
        yield Resume(on_drain=[drain], resumption=resumption)
    finally:
        await resumption.stop()
