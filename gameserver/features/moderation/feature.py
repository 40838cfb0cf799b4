"""The moderation feature's lifespan (composed in ``gameserver/app.py``, before the identity feature).

Every process gets the ``moderation`` resource (:class:`Moderation`: mutes, bans, reports, the log) and the
``wordfilter`` resource (:class:`WordFilter` of ``moderation.words``). The identity feature refuses banned players
and serves the ``/moderation/*`` routes (they revoke tokens); the chat edge refuses muted players' lines and
applies the filter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from redis.asyncio import Redis

from gameserver.bus.local import Bus
from gameserver.config import ModerationConfig
from gameserver.features.lifespan import Contribution
from gameserver.features.moderation.store import Moderation
from gameserver.features.moderation.wordfilter import WordFilter
from gameserver.keys import Keys


@dataclass
class ModerationFeature(Contribution):
    store: Moderation = field(kw_only=True)
    words: WordFilter = field(kw_only=True)
    mode: str = field(kw_only=True)  # moderation.filter: mask, reject or off
    admin_key: str = field(kw_only=True)


@asynccontextmanager
async def lifespan(config: ModerationConfig, *, redis: Redis, keys: Keys, bus: Bus) -> AsyncIterator[ModerationFeature]:
    store = Moderation(
        redis,
        keys,
        bus.publish,
        log_max=config.log_max,
        report_rate=config.report_rate,
        report_window=config.report_window,
    )
    words = WordFilter(config.words if config.filter != "off" else ())
    yield ModerationFeature(
        resources={"moderation": store, "wordfilter": words},
        store=store,
        words=words,
        mode=config.filter,
        admin_key=config.admin_key,
    )
