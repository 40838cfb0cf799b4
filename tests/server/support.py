"""Helpers for the in-process server tests: wait on a condition, never on the clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgpack

from gameserver.protocol.frames import encode_frame


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Yield to the loop until ``condition()`` holds; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


def tcp_frame(message: object) -> bytes:
    return encode_frame(msgpack.packb(message))


def echo_of_size(size: int) -> bytes:
    """A msgpack ``sys.echo`` request of exactly ``size`` bytes."""
    base = {"id": 1, "fn": "sys.echo", "args": {"pad": ""}}
    pad = size - len(msgpack.packb(base))
    for _ in range(3):  # the str header grows with the length
        payload = msgpack.packb({**base, "args": {"pad": "x" * pad}})
        pad += size - len(payload)
    assert len(payload) == size
    return payload
