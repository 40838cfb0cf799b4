"""The mail feature's set-up (``FEATURES`` in ``gameserver/app.py``).

A process with the ``worker`` role opens the mail store (``mail.root``, default ``<data_dir>/mail``), hands
it to handlers as the ``mail`` resource and serves the admin routes ``POST /mail/send`` and ``POST /mail/broadcast``
(which enqueues background jobs through the ``jobs`` resource).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gameserver.features.mailbox.admin import admin_routes
from gameserver.features.mailbox.store import MailStore

if TYPE_CHECKING:
    from gameserver.app import App


async def setup(app: App) -> None:
    if "worker" not in app.roles:
        return
    resources = app.resources
    store = MailStore(app.config.mail_path, max_messages=app.config.mail.max_messages)
    store.root.mkdir(parents=True, exist_ok=True)
    resources.extra["mail"] = store

    def push(uid: int, event: str, data: object) -> None:
        resources.bus.push(uid, event, data)  # looked up per call: the bus may be swapped for a Redis one

    jobs = resources.extra["jobs"]  # the jobs feature comes first (FEATURES)
    app.http_routes.extend(admin_routes(config=app.config.mail, db=resources.db, store=store, push=push, jobs=jobs))
