"""Alembic's environment, run by :mod:`gameserver.storage.migrate` on a connection it opened (and locked).

Autogenerate compares against the shared :data:`gameserver.storage.sql.metadata`, where the core and every
loaded module declare their tables.
"""

from __future__ import annotations

from alembic import context

from gameserver.storage.sql import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `gameserver migrate`, which opens the database from config.toml")
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite alters a table by copying it: autogenerate writes batch_alter_table blocks
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
