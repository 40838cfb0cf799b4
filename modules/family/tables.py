from __future__ import annotations

import sqlalchemy as sa

from gameserver.storage.sql import metadata

FAMILY_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite auto-increments INTEGER keys only

families = sa.Table(
    "families",
    metadata,
    sa.Column("family_id", FAMILY_ID, primary_key=True, autoincrement=True),
    sa.Column("world", sa.Integer, nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("world", "name", name="uq_families_world_name"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
    mysql_collate="utf8mb4_bin",
)
"""A family belongs to one world; its name is unique in that world."""

family_members = sa.Table(
    "family_members",
    metadata,
    sa.Column("uid", sa.BigInteger, primary_key=True, autoincrement=False),  # one family per player
    sa.Column("family_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("role", sa.Integer, nullable=False),  # enums.FamilyRole
    sa.Column("joined_at", sa.DateTime, nullable=False),
    mysql_engine="InnoDB",
)
"""Who is in which family with which role. ``accounts.family`` mirrors it (the chat edge reads that)."""
