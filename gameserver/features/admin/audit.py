"""The audit log: one row per login attempt and per state-changing console request, whatever its outcome."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa

from gameserver.features.admin.tables import admin_audit
from gameserver.storage.sql import Sql

MAX_DETAIL = 4000  # characters of the request body kept
MAX_ROWS = 500


async def record(db: Sql, *, admin: str, address: str, action: str, target: str, detail: Any, outcome: str) -> None:
    text = json.dumps(detail, ensure_ascii=False, default=str, sort_keys=True)[:MAX_DETAIL]
    await db.execute(
        admin_audit.insert().values(
            at=int(time.time() * 1000),
            admin=admin[:64],
            address=address[:64],
            action=action,
            target=target[:128],
            detail=text,
            outcome=outcome[:64],
        )
    )


async def recent(db: Sql, *, limit: int, before: int | None = None) -> list[dict[str, Any]]:
    """The latest ``limit`` entries (below ``before``, an ``audit_id``), newest first."""
    query = sa.select(admin_audit).order_by(admin_audit.c.audit_id.desc()).limit(min(limit, MAX_ROWS))
    if before is not None:
        query = query.where(admin_audit.c.audit_id < before)
    return [dict(row._mapping) for row in await db.fetch_all(query)]
