"""The read-only table browser: every table declared on the shared metadata, a page of rows at a time, in primary
key order. Columns that hold secrets (a password hash) are shown masked."""

from __future__ import annotations

import base64
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from gameserver.errors import BadRequest, GameError
from gameserver.storage.sql import Sql, metadata

MAX_PAGE = 200
SECRET_WORDS = ("password", "secret", "hash", "token_")
MASK = "***"


class TableNotFound(GameError):
    code = "not_found"
    message = "no such table"
    status = 404


def is_secret(column: str) -> bool:
    return any(word in column for word in SECRET_WORDS)


def tables() -> list[dict[str, Any]]:
    return [
        {"name": table.name, "columns": [column.name for column in table.columns]}
        for table in sorted(metadata.tables.values(), key=lambda t: t.name)
    ]


async def page(db: Sql, name: str, *, page: int, size: int) -> dict[str, Any]:
    """One page of ``name``'s rows (from 0), with the table's row count. Raises not_found, bad_request."""
    table = metadata.tables.get(name)
    if table is None:
        raise TableNotFound(f"no table {name}")
    if page < 0 or not 0 < size <= MAX_PAGE:
        raise BadRequest(f"page must be 0 or more and size from 1 to {MAX_PAGE}")
    order = list(table.primary_key.columns) or list(table.columns)
    rows = await db.fetch_all(sa.select(table).order_by(*order).limit(size).offset(page * size))
    total = await db.fetch_value(sa.select(sa.func.count()).select_from(table))
    columns = [column.name for column in table.columns]
    return {
        "table": name,
        "columns": columns,
        "rows": [[_shown(column, value) for column, value in zip(columns, row, strict=True)] for row in rows],
        "page": page,
        "size": size,
        "total": int(total or 0),
    }


def _shown(column: str, value: Any) -> Any:
    if value is None:
        return None
    if is_secret(column):
        return MASK
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Decimal):
        return str(value)
    return value
