"""accounts.tokens_valid_after: tokens issued at or before it are revoked (ms since the epoch; NULL: none).

Revision ID: core_0002
Revises: core_0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from gameserver.storage.migrate import add_column

revision = "core_0002"
down_revision = "core_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_column("accounts", sa.Column("tokens_valid_after", sa.BigInteger, nullable=True))  # old rows read NULL


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("tokens_valid_after")
