"""friends and friend_requests (adopts a database made before migrations).

Revision ID: friends_0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gameserver.storage.migrate import create_table

revision = "friends_0001"
down_revision = None
branch_labels = ("friends",)
depends_on = None


def upgrade() -> None:
    create_table(
        "friends",
        sa.Column("uid", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("friend", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("since", sa.DateTime, nullable=False),
        mysql_engine="InnoDB",
    )
    create_table(
        "friend_requests",
        sa.Column("sender", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("recipient", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Index("ix_friend_requests_recipient", "recipient"),
        mysql_engine="InnoDB",
    )


def downgrade() -> None:
    op.drop_table("friend_requests")
    op.drop_table("friends")
