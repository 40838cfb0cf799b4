"""The module's tables, declared on the shared metadata: the server creates them at start-up."""

import sqlalchemy as sa

from gameserver.storage.sql import metadata

# Table names start with the module's name; give every String a length (MySQL needs one).
scores = sa.Table(
    "leaderboard_scores",
    metadata,
    sa.Column("board", sa.String(32), primary_key=True),
    sa.Column("uid", sa.BigInteger, primary_key=True),
    sa.Column("score", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),  # ms since the epoch: no time-zone questions
    sa.Index("ix_leaderboard_scores_rank", "board", "score"),
)
