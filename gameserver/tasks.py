"""Cancelling tasks so that they end: Python 3.11's ``asyncio.wait_for`` (which redis-py uses for every command,
redis-py #2028 for pub/sub) can lose a cancel that arrives as the awaited call completes, and the task then goes on
to its next wait. A shutdown that cancels once and waits can hang on such a task; :func:`cancel_and_wait` cancels
again until each one has ended."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

CANCEL_AGAIN = 0.1  # seconds a cancelled task has to end before it is cancelled again


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], again: float = CANCEL_AGAIN) -> None:
    """Cancel ``tasks`` and return once every one of them has ended (their results and exceptions are left to
    whoever reads them)."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=again)
