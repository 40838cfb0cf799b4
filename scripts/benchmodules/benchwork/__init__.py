"""``benchwork.spin``: a handler that does a fixed amount of CPU work, for ``scripts/bench.py --bus``."""

from __future__ import annotations

import time

from gameserver.dispatch.registry import handler


async def spin(us: int = 200) -> int:
    """Burns ``us`` microseconds of this thread's CPU time (not wall time: a busy host does not shorten it), then
    returns ``us``."""
    end = time.thread_time() + us / 1e6
    while time.thread_time() < end:
        pass
    return us


HANDLERS = {"spin": handler(spin, login=False)}
