from __future__ import annotations

import sqlalchemy as sa

from gameserver.storage.sql import metadata

mail_claims = sa.Table(
    "mail_claims",
    metadata,
    sa.Column("uid", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("mail_id", sa.String(128), primary_key=True),
    sa.Column("claimed_at", sa.DateTime, nullable=False),
    mysql_engine="InnoDB",
    mysql_charset="ascii",  # mail ids are ASCII file names (gameserver.features.mailbox.maildir.KEY_PATTERN)
    mysql_collate="ascii_bin",
)
"""One row per gift mail whose items were moved into the inventory. The primary key (uid, mail_id) makes the
claim happen once: the row is inserted in the same transaction as the items, so both commit or neither."""
