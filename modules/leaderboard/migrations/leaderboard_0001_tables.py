"""leaderboard_scores (adopts a database made before migrations). A module's first revision starts its
branch (branch_labels); later ones name the one before as down_revision: `gameserver migrate new leaderboard -m ...`.

Revision ID: leaderboard_0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gameserver.storage.migrate import create_table

revision = "leaderboard_0001"
down_revision = None
branch_labels = ("leaderboard",)
depends_on = None


def upgrade() -> None:
    create_table(
        "leaderboard_scores",
        sa.Column("board", sa.String(32), primary_key=True),
        sa.Column("uid", sa.BigInteger, primary_key=True),
        sa.Column("score", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Index("ix_leaderboard_scores_rank", "board", "score"),
    )


def downgrade() -> None:
    op.drop_table("leaderboard_scores")
