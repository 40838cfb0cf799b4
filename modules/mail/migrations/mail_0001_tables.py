"""mail_claims (adopts a database made before migrations).

Revision ID: mail_0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gameserver.storage.migrate import create_table

revision = "mail_0001"
down_revision = None
branch_labels = ("mail",)
depends_on = None


def upgrade() -> None:
    create_table(
        "mail_claims",
        sa.Column("uid", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("mail_id", sa.String(128), primary_key=True),
        sa.Column("claimed_at", sa.DateTime, nullable=False),
        mysql_engine="InnoDB",
        mysql_charset="ascii",
        mysql_collate="ascii_bin",
    )


def downgrade() -> None:
    op.drop_table("mail_claims")
