"""Connections without requests, for ``scripts/bench.py``: many WebSocket handshakes at once (a reconnect storm after
a restart) and idle connections held open (what each one costs the server in memory).

Connections come from many source addresses (127.0.0.2 to 127.0.0.254, as players behind many addresses do; Linux
routes all of 127.0.0.0/8 to loopback), so that neither the per-address caps nor one address's ephemeral ports
limit them. Each sends a plain upgrade request and is done once it reads ``101 Switching Protocols``.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass

import benchlib
from benchlib import HOST, BenchError

SOURCES = tuple(f"127.0.0.{i}" for i in range(2, 255))
OPEN_TIMEOUT = 120.0  # for a whole storm: SYNs dropped by a full backlog are retried after 1, 3, 7 ... seconds
SETTLE = 1.0  # seconds for the server to finish its work on the last connections before its RSS is read


class Upgrade(asyncio.Protocol):
    """One connection that performs the WebSocket handshake and then stays idle until closed."""

    def __init__(self, port: int, path: str) -> None:
        self.port = port
        self.path = path
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(benchlib.ws_handshake(self.port, self.path))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return  # e.g. a ping after the handshake: idle clients do not answer, nothing here lasts that long
        self.buffer += data
        try:
            rest = benchlib.ws_accepted(self.buffer, "handshake refused")
        except BenchError as exc:
            self.done.set_exception(exc)
            return
        if rest is not None:
            self.buffer = b""
            self.done.set_result(time.perf_counter())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(BenchError(f"closed before the handshake was answered ({exc})"))


@dataclass
class Opened:
    connections: list[Upgrade]
    seconds: float  # from the first connect to the last handshake answered
    failures: list[BaseException]

    @property
    def rate(self) -> float:
        return len(self.connections) / self.seconds if self.seconds else float("nan")


async def open_many(port: int, path: str, count: int) -> Opened:
    """Start ``count`` connections at once and wait until each has its handshake answered (or failed)."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()

    async def one(i: int) -> Upgrade:
        upgrade = Upgrade(port, path)
        await loop.create_connection(lambda: upgrade, HOST, port, local_addr=(SOURCES[i % len(SOURCES)], 0))
        await upgrade.done
        return upgrade

    async with asyncio.timeout(OPEN_TIMEOUT):
        results = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    seconds = time.perf_counter() - started
    opened = [r for r in results if isinstance(r, Upgrade)]
    failures = [r for r in results if isinstance(r, BaseException)]
    return Opened(opened, seconds, failures)


async def close(connections: Sequence[Upgrade]) -> None:
    for upgrade in connections:
        if upgrade.transport is not None:
            upgrade.transport.abort()
    await asyncio.sleep(0.2)  # let the server see the closes before the next scenario


def rss_kib(pid: int) -> int:
    """The resident set of process ``pid`` in KiB (VmRSS of /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


@dataclass
class Idle:
    kind: str
    count: int
    rest_kib: int
    held_kib: int
    seconds: float

    @property
    def per_connection_kib(self) -> float:
        return (self.held_kib - self.rest_kib) / self.count


async def hold_idle(kind: str, pid: int, port: int, path: str, count: int) -> Idle:
    """Open ``count`` idle connections to a fresh server and read its RSS before and while it holds them."""
    await asyncio.sleep(SETTLE)
    rest = rss_kib(pid)
    opened = await open_many(port, path, count)
    try:
        if opened.failures:
            raise BenchError(f"{kind}: {len(opened.failures)} of {count} idle connections failed: {opened.failures[0]}")
        await asyncio.sleep(SETTLE)
        return Idle(kind, count, rest, rss_kib(pid), opened.seconds)
    finally:
        await close(opened.connections)


def raise_open_files(needed: int) -> None:
    """Raise this process's soft limit on open files toward the hard one (the servers it starts inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)), hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        raise BenchError(f"{needed} connections need {needed} open files; the hard limit here is {hard}")
