"""What the benchmarks in this directory share: raw WebSocket client frames, server subprocesses pinned to a
CPU (their ports read from their start-up line, their CPU time from ``/proc/<pid>/stat``), the verdicts.

The scripts are run as ``python scripts/<name>.py``, which puts this directory first on ``sys.path``: they
import this module as ``benchlib``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
MASK = os.urandom(4)
CLK_TCK = os.sysconf("SC_CLK_TCK")
CONNECT_BATCH = 100  # under the servers' listen backlog (100): no SYN retries while opening many sockets
START_TIMEOUT = 30.0
DRAIN_TIMEOUT = 5.0

OP_TEXT = 0x1
OP_BINARY = 0x2


class BenchError(Exception):
    """A server misbehaved (did not start, refused a login, closed a connection, sent a wrong reply)."""


# ---------------------------------------------------------------------------------------------------------
# Wire encodings


def mask(data: bytes, key: bytes) -> bytes:
    size = len(data)
    stream = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(size, "big")


def ws_client_frame(payload: bytes, opcode: int = OP_BINARY) -> bytes:
    """One masked frame, FIN set (RFC 6455, 5.2): binary unless ``opcode`` says otherwise."""
    first = 0x80 | opcode
    size = len(payload)
    if size < 126:
        header = bytes([first, 0x80 | size])
    elif size < 1 << 16:
        header = bytes([first, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([first, 0x80 | 127]) + size.to_bytes(8, "big")
    return header + MASK + mask(payload, MASK)


def ws_handshake(port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def ws_accepted(data: bytes, refused: str) -> bytes | None:
    """The bytes after a ``101`` handshake reply, None if the reply is incomplete; BenchError(refused) if not 101."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    if not head.startswith(b"HTTP/1.1 101 "):
        raise BenchError(f"{refused}: {head[:80]!r}")
    return rest


# ---------------------------------------------------------------------------------------------------------
# The load generator's connections


class LoadRun:
    """State shared by the connections of one scenario: the first error any of them saw."""

    def __init__(self) -> None:
        self.error: BaseException | None = None

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc


class LoadClient(asyncio.Protocol):
    """One load connection: TCP_NODELAY, ``ready`` once it can start, aborted (and its run failed) on an error."""

    def __init__(self, run: LoadRun) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.pending = b""
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connected()

    def connected(self) -> None:
        """The connection is open: start the handshake or login, or set ``ready``."""

    def _abort(self, exc: BaseException) -> None:
        self.run.fail(exc)
        if not self.ready.done():
            self.ready.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()


async def close_all(clients: Sequence[LoadClient]) -> None:
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    await asyncio.sleep(0.05)  # let the servers see the closes before the next scenario


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank), NaN if there are none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# ---------------------------------------------------------------------------------------------------------
# Server processes


def _pin_child(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    with contextlib.suppress(Exception):  # die with the benchmark even if it is killed (Linux only)
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ServerProcess:
    """A server subprocess pinned to one CPU; reports its ports on its output.

    ``patterns``: regular expressions with named groups (port name -> digits), all of which must match the
    output; the ports are the union of their groups.
    """

    def __init__(self, name: str, argv: Sequence[str], workdir: Path, cpu: int | None, *patterns: str) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the benchmark only; it stops the server itself
            preexec_fn=lambda: _pin_child(cpu),
        )
        try:
            self.ports = self._wait_ports([re.compile(p) for p in patterns])
        except BaseException:
            self.stop()
            raise

    def _wait_ports(self, regexes: Sequence[re.Pattern[str]]) -> dict[str, int]:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            matches = [regex.search(text) for regex in regexes]
            if all(matches):
                return {key: int(value) for m in matches if m for key, value in m.groupdict().items()}
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{text[-2000:]}")
            time.sleep(0.05)
        raise BenchError(f"{self.name} did not report its ports within {START_TIMEOUT:g}s")

    def cpu_seconds(self) -> float:
        """User + system CPU of the whole process (every thread), from /proc/<pid>/stat."""
        user, system = self.cpu_split()
        return user + system

    def cpu_split(self) -> tuple[float, float]:
        """(user, system) CPU seconds: fields 14 and 15 of proc(5)."""
        with open(f"/proc/{self.proc.pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
        return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} died with {self.proc.returncode}:\n{self.tail()}")

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# ---------------------------------------------------------------------------------------------------------
# Reports and signals


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """Handle SIGTERM as Ctrl-C, so that the ``finally`` blocks stop the servers either way."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
