"""The operations console's tables, declared on the shared metadata like the shipped modules' (one file, so that they
move to a migration as one piece)."""

from __future__ import annotations

import sqlalchemy as sa

from gameserver.storage.sql import ID, metadata

admin_accounts = sa.Table(
    "admin_accounts",
    metadata,
    sa.Column("admin_id", ID, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),  # accounts.Role
    sa.Column("password_hash", sa.String(255), nullable=False),  # argon2id, as players' (identity/passwords.py)
    sa.Column("created_at", sa.BigInteger, nullable=False),  # ms since the epoch
    sa.UniqueConstraint("name", name="uq_admin_accounts_name"),
)
"""Who may log into the operations console, with which role. Created by ``gameserver admin create``."""

admin_audit = sa.Table(
    "admin_audit",
    metadata,
    sa.Column("audit_id", ID, primary_key=True, autoincrement=True),
    sa.Column("at", sa.BigInteger, nullable=False),  # ms since the epoch
    sa.Column("admin", sa.String(64), nullable=False),  # the name given, for a failed login too
    sa.Column("address", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),  # "login", "inventory.edit", "jobs.retry", ...
    sa.Column("target", sa.String(128), nullable=False),  # "uid 12", "job 3f2a...", "" for none
    sa.Column("detail", sa.Text, nullable=False),  # the request's JSON body
    sa.Column("outcome", sa.String(64), nullable=False),  # "ok" or the error code it answered
    sa.Index("ix_admin_audit_at", "at"),
)
"""Every state-changing request to the console and every login attempt, with who, from where and how it ended."""
