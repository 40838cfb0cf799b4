from __future__ import annotations

import sqlalchemy as sa

from gameserver.storage.sql import metadata

inventory = sa.Table(
    "inventory",
    metadata,
    sa.Column("uid", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("item", sa.Integer, primary_key=True, autoincrement=False),  # enums.ItemKind
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.CheckConstraint("count >= 0", name="ck_inventory_count"),
    mysql_engine="InnoDB",
)
"""How many of each item kind a player owns; one row per (uid, item). Counts never go negative."""
