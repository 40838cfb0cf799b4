from __future__ import annotations

import time
from typing import Any


async def echo(*, args: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Returns ``args`` unchanged."""
    return args


async def now(**_: Any) -> int:
    """Returns the server time in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000
