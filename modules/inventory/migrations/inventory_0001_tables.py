"""inventory (adopts a database made before migrations).

Revision ID: inventory_0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gameserver.storage.migrate import create_table

revision = "inventory_0001"
down_revision = None
branch_labels = ("inventory",)
depends_on = None


def upgrade() -> None:
    create_table(
        "inventory",
        sa.Column("uid", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("item", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.CheckConstraint("count >= 0", name="ck_inventory_count"),
        mysql_engine="InnoDB",
    )


def downgrade() -> None:
    op.drop_table("inventory")
