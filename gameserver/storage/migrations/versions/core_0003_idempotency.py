"""idempotency: the stored reply of each idempotent request by (scope, fn, key) (gameserver/dispatch/idempotency.py).

Revision ID: core_0003
Revises: core_0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

BLOB = sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql")  # up to 16 MiB there, not BLOB's 64 KiB

revision = "core_0003"
down_revision = "core_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency",
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("fn", sa.String(128), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("reply", BLOB, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Index("ix_idempotency_created_at", "created_at"),
    )


def downgrade() -> None:
    op.drop_table("idempotency")
