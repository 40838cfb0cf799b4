"""The mail feature's lifespan (composed in ``gameserver/app.py``), in a process with the ``worker`` role.

It opens the mail store (``mail.root``, default ``<data_dir>/mail``), hands it to handlers as the ``mail``
resource and serves the admin routes ``POST /mail/send`` and ``POST /mail/broadcast`` (which enqueue background
jobs: it takes the jobs feature's :class:`~gameserver.features.jobs.queue.Jobs`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from gameserver.bus.local import Bus
from gameserver.config import MailConfig
from gameserver.features.jobs.queue import Jobs
from gameserver.features.lifespan import Contribution
from gameserver.features.mailbox.admin import admin_routes
from gameserver.features.mailbox.store import MailStore
from gameserver.storage.sql import Sql


@asynccontextmanager
async def lifespan(config: MailConfig, root: Path, *, db: Sql, bus: Bus, jobs: Jobs) -> AsyncIterator[Contribution]:
    store = MailStore(root, max_messages=config.max_messages)
    store.root.mkdir(parents=True, exist_ok=True)
    routes = admin_routes(config=config, db=db, store=store, push=bus.push, jobs=jobs)
    yield Contribution(resources={"mail": store}, http_routes=routes)
