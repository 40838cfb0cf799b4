from __future__ import annotations

import sqlalchemy as sa

from gameserver.storage.sql import metadata

friends = sa.Table(
    "friends",
    metadata,
    sa.Column("uid", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("friend", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("since", sa.DateTime, nullable=False),
    mysql_engine="InnoDB",
)
"""A friendship is two rows, (a, b) and (b, a): each player's list is one indexed range."""

friend_requests = sa.Table(
    "friend_requests",
    metadata,
    sa.Column("sender", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("recipient", sa.BigInteger, primary_key=True, autoincrement=False, index=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    mysql_engine="InnoDB",
)
"""Requests waiting for the recipient's answer; the recipient is told by a mail (MailKind.FRIEND_REQUEST)."""
