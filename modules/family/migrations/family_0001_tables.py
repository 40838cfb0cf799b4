"""families and family_members (adopts a database made before migrations).

Revision ID: family_0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gameserver.storage.migrate import create_table

revision = "family_0001"
down_revision = None
branch_labels = ("family",)
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    create_table(
        "families",
        sa.Column("family_id", ID, primary_key=True, autoincrement=True),
        sa.Column("world", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("world", "name", name="uq_families_world_name"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    create_table(
        "family_members",
        sa.Column("uid", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("family_id", sa.BigInteger, nullable=False),
        sa.Column("role", sa.Integer, nullable=False),
        sa.Column("joined_at", sa.DateTime, nullable=False),
        sa.Index("ix_family_members_family_id", "family_id"),
        mysql_engine="InnoDB",
    )


def downgrade() -> None:
    op.drop_table("family_members")
    op.drop_table("families")
