"""The operations console: the production admin tool at ``/admin/`` on the HTTP listener (docs/operations.md,
"Operations console"). The play-test console (:mod:`gameserver.features.console`) is another thing, for local use.

- :mod:`~gameserver.features.admin.tables`: ``admin_accounts`` and ``admin_audit``.
- :mod:`~gameserver.features.admin.accounts`: admin accounts and their roles (viewer < moderator < admin).
- :mod:`~gameserver.features.admin.sessions`: logins in Redis, the session cookie and the CSRF token.
- :mod:`~gameserver.features.admin.audit`: the audit log.
- :mod:`~gameserver.features.admin.players`, :mod:`~gameserver.features.admin.browse`: what the console shows of
  players and tables, and the changes it makes through the game's own code.
- :mod:`~gameserver.features.admin.samples`: metrics samples per node for the graphs.
- :mod:`~gameserver.features.admin.api`: the JSON API and the static page (``static/``).
- :mod:`~gameserver.features.admin.feature`: the lifespan (log shipping, sampling, kicks) and its wiring.
- :mod:`~gameserver.features.admin.command`: ``gameserver admin create NAME --role R``.

Log shipping itself is :mod:`gameserver.logship`, next to the logging set-up.
"""
