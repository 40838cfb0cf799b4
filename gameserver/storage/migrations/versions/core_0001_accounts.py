"""accounts: the table as the first releases created it (before migrations).

Revision ID: core_0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gameserver.storage.migrate import create_table

revision = "core_0001"
down_revision = None
branch_labels = ("gameserver",)
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    create_table(
        "accounts",
        sa.Column("uid", ID, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("world", sa.Integer, nullable=False),
        sa.Column("family", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("username", name="uq_accounts_username"),
        sa.Index("ix_accounts_family", "family"),
        sa.Index("ix_accounts_world", "world"),
    )


def downgrade() -> None:
    op.drop_table("accounts")
