"""admin_accounts, admin_audit: the operations console's accounts and audit trail (gameserver/features/admin/tables.py).

Revision ID: core_0004
Revises: core_0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gameserver.storage.migrate import create_table
from gameserver.storage.sql import ID

revision = "core_0004"
down_revision = "core_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_table(  # unless a database made before migrations (create_all) has it
        "admin_accounts",
        sa.Column("admin_id", ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("name", name="uq_admin_accounts_name"),
    )
    create_table(
        "admin_audit",
        sa.Column("audit_id", ID, primary_key=True, autoincrement=True),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("admin", sa.String(64), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Index("ix_admin_audit_at", "at"),
    )


def downgrade() -> None:
    op.drop_table("admin_audit")
    op.drop_table("admin_accounts")
