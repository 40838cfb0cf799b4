#!/usr/bin/env python
"""Gate benchmark: closed-loop ``sys.echo`` over WebSocket and raw TCP, against a bare websockets echo server
and, with ``--baseline node``, Node's ``ws`` + ``msgpackr`` speaking the same protocol; reconnect storms and the
memory of idle connections.

    .venv/bin/python scripts/bench.py            # full run: C = 1, 50, 500; 5 s per scenario
    .venv/bin/python scripts/bench.py --quick    # 1 s per scenario
    .venv/bin/python scripts/bench.py --duration 10 --concurrency 50,500
    .venv/bin/python scripts/bench.py --baseline node --rounds 3   # beside Node ws; medians of 3 rounds
    .venv/bin/python scripts/bench.py --baseline node --rounds 3 --storm 5000 --idle 19000

With ``--rounds N`` every scenario runs N times (the rounds interleave, so a slow spell of the machine touches
every server alike) and the tables show the median of the rounds with the spread (lowest-highest); a ratio is the
median of the per-round ratios. ``--storm N`` opens N WebSocket connections at once from many source addresses
(127.0.0.2-254) while 50 connections already open keep calling, and reports how long until every handshake is
done and the open connections' p99 meanwhile. ``--idle N`` holds N idle WebSocket connections and reports the
server's RSS per connection, and the resting RSS of ``gameserver run`` with every role on the embedded defaults.

Each of C connections keeps exactly one request in flight: send, wait for the reply, send again. Three
servers run under the same load, each pinned to CPU 0 (the load generator is pinned to CPU 1):

- ``echo-ws``: the baseline, a bare ``websockets.asyncio.server.serve`` echo handler on uvloop;
- ``gate-ws``: ``python -m gameserver run``, binary msgpack frames on ``/gate``;
- ``gate-tcp``: the same server's raw TCP gate (4-byte length + msgpack);
- ``echo-tcp``: a reference, not a target: a bare uvloop ``asyncio.Protocol`` that writes back what it reads,
  the floor of any Python TCP server here (system calls, loopback TCP, the event loop).

Besides requests/s and p50/p99 latency, the table shows the server's CPU time per request, read from
``/proc/<pid>/stat`` (utime + stime over the measured window / requests). It stays honest when the load
generator, not the server, is the bottleneck; the ``srv cpu`` and ``gen cpu`` columns show which one was busy.

Scale-out (issue 13): ``--bus redis|nats [--workers N]`` instead measures a handler that burns ~200 us of CPU
(``benchwork.spin``, from ``scripts/benchmodules``) over the TCP gate: in one process (``inproc``), then with a gate
process and 1 and N worker processes behind the broker (``redis-1w``, ``redis-2w``, ...), on the local Redis at
127.0.0.1:6379 or NATS at 127.0.0.1:4222 under a key prefix of its own (removed afterwards). Nothing is pinned
in that mode: N workers, the gate and the broker share the machine's CPUs.

    .venv/bin/python scripts/bench.py --bus redis --workers 2 --concurrency 50

The load generator is one uvloop process of plain :class:`asyncio.Protocol` objects: requests are encoded
once (WebSocket frames masked once with a fixed key), and a reply is checked by comparing its bytes with the
first reply, which was decoded and verified in full. Only 127.0.0.1 is used; every server process is stopped
on exit, Ctrl-C or failure. The exit status is 0 whatever the figures are (targets are informational), 1 if
a server failed or a reply was wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import benchconnect
import benchlib
import benchnode
import msgpack
from benchlib import HOST, BenchError, ServerProcess, percentile, verdict

KINDS = ("echo-ws", "gate-ws", "gate-tcp", "echo-tcp", "node-ws")
ARGS = {"text": "hello, world", "seq": 12345}
REQUEST = {"id": 1, "fn": "sys.echo", "args": ARGS}

# The targets (issue 2).
WS_VS_ECHO = 1.2
TCP_VS_WS = 1.5
P99_MS = 5.0
P99_AT = 50

NODE_TARGET = 1.0  # issue 18: server CPU per request at or below Node ws's
NODE_MOONSHOT = 0.8
STORM_BACKGROUND = 50
MAX_CONNECTIONS = 20000  # connections already open and calling during a storm
OPEN_FILES_SPARE = 200  # beside the connections: the interpreter's own files, pipes to the servers

# The scale-out targets (issue 13).
WORK_US = 200
WORK_REQUEST = {"id": 1, "fn": "benchwork.spin", "args": {"us": WORK_US}}
WORKERS_SPEEDUP = 1.6  # 2 worker processes against 1
P99_ADDED_MS = 1.0  # the broker's path over in-process, at P99_AT connections
BENCH_MODULES = benchlib.ROOT / "scripts" / "benchmodules"
REDIS_URL = "redis://127.0.0.1:6379/0"
NATS_URL = "nats://127.0.0.1:4222"

STEAL_NOTE = 0.02  # steal time on the server's CPU above which the run is flagged as noisy


# ---------------------------------------------------------------------------------------------------------
# Wire encodings (done once per run, not per request)


def ws_server_frame(buffer: bytes) -> tuple[bytes, int] | None:
    """Parse one unmasked server frame: (payload, frame size), or None if incomplete."""
    if len(buffer) < 2:
        return None
    if buffer[0] != 0x82:
        raise BenchError(f"expected a final binary frame, got first byte {buffer[0]:#x}")
    size, start = buffer[1] & 0x7F, 2
    if buffer[1] & 0x80:
        raise BenchError("the server masked its frame")
    if size == 126:
        if len(buffer) < 4:
            return None
        size, start = int.from_bytes(buffer[2:4], "big"), 4
    elif size == 127:
        if len(buffer) < 10:
            return None
        size, start = int.from_bytes(buffer[2:10], "big"), 10
    if len(buffer) < start + size:
        return None
    return buffer[start : start + size], start + size


def tcp_frame(buffer: bytes) -> tuple[bytes, int] | None:
    if len(buffer) < 4:
        return None
    size = int.from_bytes(buffer[:4], "big")
    if len(buffer) < 4 + size:
        return None
    return buffer[4 : 4 + size], 4 + size


@dataclass(frozen=True)
class Target:
    """How to talk to one server: what to send, how to parse and check the first reply."""

    kind: str
    port: int
    path: str = ""
    work: bool = False  # benchwork.spin instead of sys.echo (--bus)

    @property
    def websocket(self) -> bool:
        return self.kind.endswith("-ws")

    def request(self) -> bytes:
        payload = msgpack.packb(WORK_REQUEST if self.work else REQUEST)
        return benchlib.ws_client_frame(payload) if self.websocket else len(payload).to_bytes(4, "big") + payload

    def parse(self, buffer: bytes) -> tuple[bytes, int] | None:
        return ws_server_frame(buffer) if self.websocket else tcp_frame(buffer)

    def check(self, payload: bytes) -> None:
        if self.work:
            expected: Any = {"id": 1, "ok": True, "data": WORK_US}
        elif self.kind.startswith("echo-"):
            expected: Any = REQUEST
        else:
            expected = {"id": 1, "ok": True, "data": ARGS}
        got = msgpack.unpackb(payload, raw=False)
        if got != expected:
            raise BenchError(f"{self.kind}: expected {expected!r}, got {got!r}")


# ---------------------------------------------------------------------------------------------------------
# The load generator


class Run(benchlib.LoadRun):
    """State shared by the connections of one scenario."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.sending = True
        self.measuring = False
        self.latencies: list[float] = []
        self.outstanding = 0
        self.drained: asyncio.Future[None] = loop.create_future()

    def stopped(self) -> None:
        self.outstanding -= 1
        if self.outstanding <= 0 and not self.drained.done():
            self.drained.set_result(None)


class LoadConnection(benchlib.LoadClient):
    """One client connection in a closed loop: exactly one request in flight."""

    run: Run

    def __init__(self, run: Run, target: Target, request: bytes) -> None:
        super().__init__(run)
        self.target = target
        self.request = request
        self.expected = b""  # the whole reply frame, learned from the first (verified) reply
        self.steady = False
        self.handshaking = target.websocket
        self.sent = 0.0

    def connected(self) -> None:
        if self.handshaking:
            self.transport.write(benchlib.ws_handshake(self.target.port, self.target.path))  # type: ignore[union-attr]
        else:
            self.ready.set_result(None)

    def start(self) -> None:
        self.sent = time.perf_counter()
        self.transport.write(self.request)  # type: ignore[union-attr]

    # The hot path: one reply, compared with the expected bytes, then the next request.
    def data_received(self, data: bytes) -> None:
        if self.pending:
            data = self.pending + data
        if not self.steady:
            self._slow(data)
            return
        if len(data) < len(self.expected):
            self.pending = data
            return
        self.pending = b""
        if data != self.expected:
            self._wrong(data)
            return
        self._answered()

    def _answered(self) -> None:
        now = time.perf_counter()
        run = self.run
        if run.measuring:
            run.latencies.append(now - self.sent)
        if run.sending:
            self.sent = now
            self.transport.write(self.request)  # type: ignore[union-attr]
        else:
            run.stopped()

    def _slow(self, data: bytes) -> None:
        try:
            if self.handshaking:
                rest = benchlib.ws_accepted(data, f"{self.target.kind}: handshake refused")
                if rest is None:
                    self.pending = data
                    return
                self.handshaking = False
                self.pending = b""
                self.ready.set_result(None)
                if rest:
                    raise BenchError(f"{self.target.kind}: unexpected bytes after the handshake")
                return
            parsed = self.target.parse(data)
            if parsed is None:
                self.pending = data
                return
            payload, size = parsed
            if size != len(data):
                raise BenchError(f"{self.target.kind}: more than one reply to one request")
            self.target.check(payload)
        except BenchError as exc:
            self._abort(exc)
            return
        self.pending = b""
        self.expected = data
        self.steady = True
        self._answered()

    def _wrong(self, data: bytes) -> None:
        self._abort(BenchError(f"{self.target.kind}: unexpected reply {data[:80]!r}, expected {self.expected!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(BenchError(f"{self.target.kind}: connection closed during the handshake"))
        elif self.run.sending:
            self.run.fail(BenchError(f"{self.target.kind}: the server closed a connection ({exc})"))
        if not self.run.sending:
            self.run.stopped()  # no reply will come


@dataclass
class Result:
    kind: str
    conns: int
    requests: int
    seconds: float
    latencies: list[float]
    server_cpu: float  # seconds of server CPU over the window
    client_cpu: float
    steal: float  # share of the server's CPU that the hypervisor gave to other guests: noise, not load

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000

    @property
    def us_per_request(self) -> float:
        return self.server_cpu / self.requests * 1e6 if self.requests else float("nan")


def cpu_ticks(cpu: int | None) -> tuple[int, int]:
    """(steal, total) clock ticks of one CPU (all CPUs if None) since boot, from /proc/stat."""
    name = b"cpu" if cpu is None else f"cpu{cpu}".encode()
    with open("/proc/stat", "rb") as f:
        for line in f:
            fields = line.split()
            if fields[0] == name:
                ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
                return ticks[7], sum(ticks)
    return 0, 0


async def run_scenario(
    target: Target, conns: int, warmup: float, duration: float, server: ServerProcess, cpu: int | None
) -> Result:
    loop = asyncio.get_running_loop()
    run = Run(loop)
    request = target.request()
    clients: list[LoadConnection] = []
    try:
        for first in range(0, conns, benchlib.CONNECT_BATCH):
            batch = [
                LoadConnection(run, target, request) for _ in range(first, min(conns, first + benchlib.CONNECT_BATCH))
            ]
            await asyncio.gather(*(loop.create_connection(lambda c=c: c, HOST, target.port) for c in batch))
            clients.extend(batch)
            async with asyncio.timeout(benchlib.START_TIMEOUT):
                await asyncio.gather(*(c.ready for c in batch))
        for client in clients:
            client.start()
        await asyncio.sleep(warmup)
        if run.error is not None:
            raise run.error
        cpu0, gen0, t0, stolen0 = server.cpu_seconds(), time.process_time(), time.perf_counter(), cpu_ticks(cpu)
        run.measuring = True
        await asyncio.sleep(duration)
        run.measuring = False
        cpu1, gen1, t1, stolen1 = server.cpu_seconds(), time.process_time(), time.perf_counter(), cpu_ticks(cpu)
        run.outstanding = sum(1 for c in clients if c.transport is not None and not c.transport.is_closing())
        run.sending = False
        if run.error is not None:
            raise run.error
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(benchlib.DRAIN_TIMEOUT):
                await run.drained
    finally:
        run.sending = False
        await benchlib.close_all(clients)  # and let the servers see the closes before the next scenario
    requests = len(run.latencies)
    if not requests:
        raise BenchError(f"{target.kind}: no reply within {duration:g}s")
    steal = (stolen1[0] - stolen0[0]) / max(1, stolen1[1] - stolen0[1])
    return Result(target.kind, conns, requests, t1 - t0, run.latencies, cpu1 - cpu0, gen1 - gen0, steal)


# ---------------------------------------------------------------------------------------------------------
# Server processes


def start_gate(workdir: Path, cpu: int | None, rate: float) -> ServerProcess:
    data_dir = workdir / "var"
    argv = [
        sys.executable,
        "-m",
        "gameserver",
        "run",
        "--config",
        str(benchlib.ROOT / "config.toml"),
        "--roles",
        "gate,worker",
        "--gate-port",
        "0",
        "--ws-port",
        "0",
        "--http-port",
        "0",
        "--data-dir",
        str(data_dir),
        "--log-level",
        "warning",
        "--set",
        f"gate.rate={rate:.1f}",
        "--set",
        f"gate.burst={int(rate)}",
        "--set",
        "gate.max_per_address=0",  # every load connection comes from 127.0.0.1
        "--set",
        f"gate.max_connections={MAX_CONNECTIONS}",  # storms and idle connections go past the default 10000
    ]
    return ServerProcess("gate", argv, workdir, cpu, r"gate-tcp=(?P<tcp>\d+), ws=(?P<ws>\d+)")


def start_node(workdir: Path, name: str, roles: str, settings: Sequence[str], pattern: str) -> ServerProcess:
    """A `gameserver run` for the scale-out scenarios (not pinned), with the bench modules."""
    argv = [
        sys.executable,
        "-m",
        "gameserver",
        "run",
        "--config",
        str(benchlib.ROOT / "config.toml"),
        "--roles",
        roles,
        "--gate-port",
        "0",
        "--ws-port",
        "0",
        "--http-port",
        "0",
        "--data-dir",
        str(workdir / name),
        "--log-level",
        "warning",
        "--set",
        f"server.node_id={name}",
        "--set",
        f"modules.paths={BENCH_MODULES}",
        "--set",
        "gate.rate=1000000000.0",
        "--set",
        "gate.burst=1000000000",
        "--set",
        "gate.max_per_address=0",
    ]
    for setting in settings:
        argv += ["--set", setting]
    return ServerProcess(name, argv, workdir, None, pattern)


class Deployment:
    """The processes of one scale-out scenario; CPU time is theirs together."""

    def __init__(self, procs: Sequence[ServerProcess]) -> None:
        self.procs = list(procs)

    def cpu_seconds(self) -> float:
        return sum(proc.cpu_seconds() for proc in self.procs)

    def check_alive(self) -> None:
        for proc in self.procs:
            proc.check_alive()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def start_deployment(workdir: Path, bus: str, workers: int, prefix: str) -> Deployment:
    """``workers`` = 0: one process with the gate and the worker (in-process dispatch, no broker)."""
    gate_pattern = r"gate-tcp=(?P<tcp>\d+)"
    if workers == 0:
        return Deployment([start_node(workdir, "inproc", "gate,worker", ["server.bus=local"], gate_pattern)])
    shared = [f"server.bus={bus}", f"redis.url={REDIS_URL}", f"redis.prefix={prefix}", f"remote.nats_url={NATS_URL}"]
    procs: list[ServerProcess] = []
    try:
        for n in range(workers):
            procs.append(start_node(workdir, f"{bus}-w{n + 1}", "worker", shared, r"http=(?P<http>\d+)"))
        procs.insert(0, start_node(workdir, f"{bus}-gate", "gate", shared, gate_pattern))
    except BaseException:
        Deployment(procs).stop()
        raise
    return Deployment(procs)


def forget_prefix(bus: str, prefix: str) -> None:
    """Remove what the scale-out scenarios left in Redis (and NATS) under ``prefix``."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
    if bus == "nats":
        import nats

        from gameserver.bus.nats import subject_prefix

        async def drop() -> None:
            nc = await nats.connect(NATS_URL)
            for name in (f"{subject_prefix(prefix)}_requests", f"KV_{subject_prefix(prefix)}_gates"):
                with contextlib.suppress(Exception):
                    await nc.jetstream().delete_stream(name)
            await nc.close()

        asyncio.run(drop())


def run_scaleout(args: argparse.Namespace) -> int:
    """The --bus mode: in-process, then the broker with 1 and ``--workers`` worker processes."""
    import secrets

    import uvloop

    prefix = f"bench:{secrets.token_hex(6)}:"
    counts = sorted({0, 1, args.workers})
    print(
        f"scale-out benchmark: benchwork.spin ({WORK_US} us CPU) closed loop over the TCP gate, bus {args.bus}, "
        f"{args.duration:g}s per scenario after {args.warmup:g}s warm-up; nothing pinned"
    )
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="gs-bench-") as tmp:
        try:
            for workers in counts:
                kind = "inproc" if workers == 0 else f"{args.bus}-{workers}w"
                deployment = start_deployment(Path(tmp), args.bus, workers, prefix)
                try:
                    target = Target(kind, deployment.procs[0].ports["tcp"], work=True)
                    for conns in args.levels:
                        scenario = run_scenario(target, conns, args.warmup, args.duration, deployment, None)
                        result = uvloop.run(scenario)
                        deployment.check_alive()
                        results.append(result)
                        print(f"  {kind:<9} C={conns:<4} {result.rps:>9,.0f} req/s", flush=True)
                finally:
                    deployment.stop()
        except BenchError as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
        finally:
            forget_prefix(args.bus, prefix)
    print()
    print_table(by_cell(results))
    by = {(r.kind, r.conns): r for r in results}
    print()
    print("targets (issue 13, informational):")
    one, many = f"{args.bus}-1w", f"{args.bus}-{args.workers}w"
    for c in args.levels:
        if args.workers > 1 and (one, c) in by and (many, c) in by:
            ratio = by[many, c].rps / by[one, c].rps
            need = WORKERS_SPEEDUP if args.workers == 2 else WORKERS_SPEEDUP * args.workers / 2
            print(f"  {many} >= {need:g}x {one} throughput at C={c:<4} {verdict(ratio >= need)}  ({ratio:.2f}x)")
        if c == P99_AT and ("inproc", c) in by and (one, c) in by:
            added = by[one, c].percentile(0.99) - by["inproc", c].percentile(0.99)
            label = f"{one} p99 <= inproc p99 + {P99_ADDED_MS:g} ms at C={c}"
            print(f"  {label:<44} {verdict(added <= P99_ADDED_MS)}  (+{added:.3f} ms)")
    return 0


def start_echo(workdir: Path, cpu: int | None) -> ServerProcess:
    argv = [sys.executable, str(Path(__file__).resolve()), "--echo-server"]
    return ServerProcess("echo", argv, workdir, cpu, r"echo ws=(?P<ws>\d+) tcp=(?P<tcp>\d+)")


class TcpEcho(asyncio.Protocol):
    """The TCP floor: write back whatever arrives (a closed loop sends one whole frame per read)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def echo_server() -> None:
    """The baselines in one process (one is loaded at a time): websockets' own asyncio server on uvloop,
    echoing every message, and the bare TCP echo."""
    import uvloop
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set_result, None)
        tcp = await loop.create_server(TcpEcho, HOST, 0)
        async with serve(echo, HOST, 0) as server:
            ws_port = next(iter(server.sockets)).getsockname()[1]
            tcp_port = tcp.sockets[0].getsockname()[1]
            print(f"echo ws={ws_port} tcp={tcp_port}", file=sys.stderr, flush=True)
            await stop
        tcp.close()

    uvloop.run(main())


# ---------------------------------------------------------------------------------------------------------
# Report: the median of the rounds, with the spread


Cell = tuple[str, int]  # (kind, C)


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def spread(values: Sequence[float], fmt: str) -> str:
    """``median`` alone for one value, else ``median (lowest-highest)``."""
    text = format(median(values), fmt)
    return text if len(values) < 2 else f"{text} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def fmt_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(
        cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(cells, widths))
    )


def by_cell(results: Sequence[Result]) -> dict[Cell, list[Result]]:
    grouped: dict[Cell, list[Result]] = {}
    for r in results:
        grouped.setdefault((r.kind, r.conns), []).append(r)
    return grouped


def print_table(grouped: dict[Cell, list[Result]]) -> None:
    rounds = max(len(v) for v in grouped.values())
    per = "median (lowest-highest) of " + f"{rounds} rounds" if rounds > 1 else "one round"
    print(f"per scenario, {per}:")
    header = ("server", "C", "req/s", "p50 ms", "p99 ms", "srv us/req", "srv cpu", "gen cpu", "steal")
    widths = (9, 4, 8, 7, 7, 22 if rounds > 1 else 10, 7, 7, 5)
    print(fmt_row(header, widths))
    print(fmt_row(["-" * w for w in widths], widths))
    for (kind, conns), rs in grouped.items():
        cells = (
            kind,
            str(conns),
            f"{median([r.rps for r in rs]):,.0f}",
            f"{median([r.percentile(0.5) for r in rs]):.3f}",
            f"{median([r.percentile(0.99) for r in rs]):.3f}",
            spread([r.us_per_request for r in rs], ".1f"),
            f"{median([r.server_cpu / r.seconds for r in rs]):.0%}",
            f"{median([r.client_cpu / r.seconds for r in rs]):.0%}",
            f"{max(r.steal for r in rs):.0%}",
        )
        print(fmt_row(cells, widths))


def round_ratios(grouped: dict[Cell, list[Result]], a: str, b: str, c: int, attr: str) -> list[float]:
    """``a``'s ``attr`` over ``b``'s, one ratio per round in which both ran at concurrency ``c``."""
    pairs = zip(grouped.get((a, c), []), grouped.get((b, c), []))
    return [getattr(x, attr) / getattr(y, attr) for x, y in pairs]


RATIOS = (
    ("CPU/req gate-ws/node-ws", "gate-ws", "node-ws", "us_per_request"),
    ("CPU/req gate-tcp/node-ws", "gate-tcp", "node-ws", "us_per_request"),
    ("throughput gate-ws/node-ws", "gate-ws", "node-ws", "rps"),
    ("throughput gate-ws/echo-ws", "gate-ws", "echo-ws", "rps"),
    ("throughput gate-tcp/gate-ws", "gate-tcp", "gate-ws", "rps"),
    ("CPU/req echo-ws/gate-ws", "echo-ws", "gate-ws", "us_per_request"),
    ("CPU/req gate-ws/gate-tcp", "gate-ws", "gate-tcp", "us_per_request"),
)


def us_per_request(grouped: dict[Cell, list[Result]], kind: str, c: int) -> float:
    return median([r.us_per_request for r in grouped[kind, c]])


def print_targets(grouped: dict[Cell, list[Result]]) -> None:
    levels = sorted({c for _, c in grouped})
    print()
    print("ratios (median of the rounds' ratios)" + "".join(f"{f'C={c}':>20}" for c in levels))
    ratios: dict[tuple[str, int], list[float]] = {}
    for label, a, b, attr in RATIOS:
        cells = []
        for c in levels:
            values = round_ratios(grouped, a, b, c, attr)
            if values:
                ratios[label, c] = values
            cells.append(f"{spread(values, '.2f') if values else '-':>20}")
        if any(cell.strip() != "-" for cell in cells):
            print(f"{label:<37}" + "".join(cells))
    # What each server spends per request beyond the bare TCP echo: the part its own code decides.
    for kind in ("echo-ws", "gate-ws", "gate-tcp", "node-ws"):
        cells = [
            f"{us_per_request(grouped, kind, c) - us_per_request(grouped, 'echo-tcp', c):20.1f}"
            if (kind, c) in grouped and ("echo-tcp", c) in grouped
            else f"{'-':>20}"
            for c in levels
        ]
        if any(cell.strip() != "-" for cell in cells):
            print(f"{f'us/req {kind} - echo-tcp':<37}" + "".join(cells))

    print()
    node = [c for c in levels if ("node-ws", c) in grouped]
    if node:
        print(
            f"targets (issue 18): server CPU per request <= {NODE_TARGET}x Node ws's at every C"
            f" (moonshot {NODE_MOONSHOT}x)"
        )
        for kind in ("gate-ws", "gate-tcp"):
            for c in node:
                got = ratios.get((f"CPU/req {kind}/node-ws", c))
                if got:
                    value = median(got)
                    mark = verdict(value <= NODE_TARGET) + (" (moonshot met)" if value <= NODE_MOONSHOT else "")
                    print(f"  {kind} C={c:<4} {value:.2f}x  {mark}")
    # Throughput targets are judged where the server is saturated (C >= 50); C = 1 measures round trips.
    print("targets (issue 2; throughput judged at every C >= 50, informational):")
    saturated = [c for c in levels if c >= P99_AT]
    for label, need, key in (
        (f"gate-ws >= {WS_VS_ECHO}x echo-ws throughput", WS_VS_ECHO, "throughput gate-ws/echo-ws"),
        (f"gate-tcp >= {TCP_VS_WS}x gate-ws throughput", TCP_VS_WS, "throughput gate-tcp/gate-ws"),
    ):
        got = [(c, median(ratios[key, c])) for c in saturated if (key, c) in ratios]
        if not got:
            print(f"  {label:<40} not measured")
            continue
        detail = ", ".join(f"C={c}: {v:.2f}x" for c, v in got)
        print(f"  {label:<40} {verdict(all(v >= need for _, v in got))}  ({detail})")
    print_tcp_budget(grouped, saturated)
    for kind in ("gate-ws", "gate-tcp"):
        label = f"{kind} p99 <= {P99_MS:g} ms at C={P99_AT}"
        if (kind, P99_AT) not in grouped:
            print(f"  {label:<40} not measured")
            continue
        p99 = median([r.percentile(0.99) for r in grouped[kind, P99_AT]])
        print(f"  {label:<40} {verdict(p99 <= P99_MS)}  ({p99:.3f} ms)")


def print_tcp_budget(grouped: dict[Cell, list[Result]], levels: Sequence[int]) -> None:
    """What the TCP/WS target asks of the TCP gate, in server CPU per request, beside what it spends.

    Both gates share decode, dispatch, the handler's task and encode; only the framing differs. With the
    server saturated, throughput ~ 1 / CPU per request, so 1.5x the WebSocket gate's throughput means at most
    its CPU per request / 1.5, of which the bare TCP echo (kernel, loopback, event loop) takes its floor.
    """
    for c in levels:
        if not all((kind, c) in grouped for kind in ("gate-ws", "gate-tcp", "echo-tcp")):
            continue
        ws, tcp, floor = (us_per_request(grouped, kind, c) for kind in ("gate-ws", "gate-tcp", "echo-tcp"))
        allowed = ws / TCP_VS_WS
        print(
            f"    C={c}: 1.5x needs gate-tcp <= {allowed:.1f} us/req; the echo-tcp floor is {floor:.1f}, leaving"
            f" {allowed - floor:.1f} us of gate work; gate-tcp spends {tcp - floor:.1f}, gate-ws {ws - floor:.1f}"
        )


def describe_machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"{model}, {os.cpu_count()} CPUs, Linux {os.uname().release}, python {sys.version.split()[0]}, load {load}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short run: 1 s per scenario, 0.3 s warm-up")
    parser.add_argument("--duration", type=float, help="measured seconds per scenario (default 5, --quick 1)")
    parser.add_argument("--warmup", type=float, help="seconds of load before measuring (default 1, --quick 0.3)")
    parser.add_argument(
        "--concurrency", default="1,50,500", help="comma-separated connection counts; none: only --storm/--idle"
    )
    parser.add_argument("--servers", default=",".join(KINDS[:4]), help=f"comma-separated subset of {','.join(KINDS)}")
    parser.add_argument("--baseline", choices=("none", "node"), default="none", help="node: add Node ws (node-ws)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every scenario; report medians (default 1)")
    parser.add_argument("--storm", type=int, default=0, help="also open this many WebSocket connections at once")
    parser.add_argument("--idle", type=int, default=0, help="also hold this many idle connections: RSS each")
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU the servers are pinned to")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU the load generator is pinned to")
    parser.add_argument("--no-pin", action="store_true", help="do not pin anything")
    parser.add_argument("--rate", type=float, default=1e9, help="gate.rate for the gate (high: no throttling)")
    parser.add_argument("--bus", choices=("redis", "nats"), help="scale-out mode: a gate and worker processes")
    parser.add_argument("--workers", type=int, default=2, help="worker processes in the widest --bus scenario")
    parser.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.duration = args.duration if args.duration is not None else (1.0 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 1.0)
    args.levels = [] if args.concurrency == "none" else [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
    if args.baseline == "node" and "node-ws" not in args.kinds:
        args.kinds.append("node-ws")
    if (not args.levels and not (args.storm or args.idle)) or any(not 1 <= c <= 5000 for c in args.levels):
        parser.error("--concurrency: counts between 1 and 5000 (none: only with --storm or --idle)")
    if unknown := set(args.kinds) - set(KINDS):
        parser.error(f"--servers: unknown {', '.join(sorted(unknown))}")
    if args.bus and args.concurrency == "1,50,500":
        args.levels = [P99_AT]  # the scale-out targets are at 50 connections
    if not 1 <= args.workers <= 64:
        parser.error("--workers: between 1 and 64")
    if args.duration <= 0 or args.duration > 600 or args.warmup < 0:
        parser.error("--duration: between 0 and 600 seconds; --warmup >= 0")
    if not 1 <= args.rounds <= 50 or not 0 <= args.storm <= 19000 or not 0 <= args.idle <= 19000:
        parser.error("--rounds: 1 to 50; --storm and --idle: 0 to 19000")
    return args


@contextlib.contextmanager
def servers(kinds: Sequence[str], workdir: Path, cpu: int | None, rate: float) -> Iterator[dict[str, ServerProcess]]:
    """The server processes that ``kinds`` need, by name (echo, gate, node); all stopped on leaving."""
    started: dict[str, ServerProcess] = {}
    try:
        if {"echo-ws", "echo-tcp"} & set(kinds):
            started["echo"] = start_echo(workdir, cpu)
        if {"gate-ws", "gate-tcp"} & set(kinds):
            started["gate"] = start_gate(workdir, cpu, rate)
        if "node-ws" in kinds:
            started["node"] = benchnode.start(workdir, cpu)
        yield started
    finally:
        for server in started.values():
            server.stop()


def target(kind: str, procs: dict[str, ServerProcess]) -> tuple[Target, ServerProcess]:
    proc = procs[kind.partition("-")[0]]
    port = proc.ports[kind.partition("-")[2]]
    return Target(kind, port, "/gate" if kind == "gate-ws" else "/"), proc


@dataclass
class Storm:
    kind: str
    opened: int
    failed: int
    seconds: float
    quiet_p99: float  # ms, the open connections' p99 in the second before the storm
    storm_p99: float  # ms, and while it lasted
    server_cpu: float

    @property
    def rate(self) -> float:
        return self.opened / self.seconds


async def run_storm(target: Target, count: int, server: ServerProcess) -> Storm:
    """``count`` handshakes at once while ``STORM_BACKGROUND`` connections keep calling."""
    loop = asyncio.get_running_loop()
    run = Run(loop)
    request = target.request()
    background = [LoadConnection(run, target, request) for _ in range(STORM_BACKGROUND)]
    storm: benchconnect.Opened | None = None
    try:
        await asyncio.gather(*(loop.create_connection(lambda c=c: c, HOST, target.port) for c in background))
        async with asyncio.timeout(benchlib.START_TIMEOUT):
            await asyncio.gather(*(c.ready for c in background))
        for client in background:
            client.start()
        run.measuring = True
        await asyncio.sleep(1.0)
        quiet, run.latencies = run.latencies, []
        cpu0 = server.cpu_seconds()
        storm = await benchconnect.open_many(target.port, target.path, count)
        cpu1 = server.cpu_seconds()
        run.measuring = False
        if run.error is not None:
            raise run.error
    finally:
        run.sending = False
        await benchlib.close_all(background)
        if storm is not None:
            await benchconnect.close(storm.connections)
    return Storm(
        target.kind,
        len(storm.connections),
        len(storm.failures),
        storm.seconds,
        percentile(quiet, 0.99) * 1000,
        percentile(run.latencies, 0.99) * 1000,
        cpu1 - cpu0,
    )


def print_storms(storms: Sequence[Storm], count: int) -> None:
    print()
    print(
        f"reconnect storm: {count} WebSocket handshakes at once from {len(benchconnect.SOURCES)} addresses, "
        f"{STORM_BACKGROUND} open connections calling meanwhile (median of the rounds):"
    )
    header = (
        "server",
        "all done s",
        "handshakes/s",
        "failed",
        "srv cpu s",
        "cpu us/hs",
        "p99 before ms",
        "p99 during ms",
    )
    widths = (9, 16, 14, 6, 9, 9, 13, 13)
    print(fmt_row(header, widths))
    for kind in dict.fromkeys(s.kind for s in storms):
        mine = [s for s in storms if s.kind == kind]
        cells = (
            kind,
            spread([s.seconds for s in mine], ".2f"),
            f"{median([s.rate for s in mine]):,.0f}",
            str(max(s.failed for s in mine)),
            f"{median([s.server_cpu for s in mine]):.2f}",
            f"{median([s.server_cpu / max(s.opened, 1) * 1e6 for s in mine]):.0f}",
            f"{median([s.quiet_p99 for s in mine]):.2f}",
            f"{median([s.storm_p99 for s in mine]):.2f}",
        )
        print(fmt_row(cells, widths))
    gate = [s.seconds for s in storms if s.kind == "gate-ws"]
    node = [s.seconds for s in storms if s.kind == "node-ws"]
    if gate and node:
        ratio = median(gate) / median(node)
        print(f"  target (issues 12, 18): gate-ws storm time <= node-ws's: {ratio:.2f}x  {verdict(ratio <= 1.0)}")


def measure_idle(args: argparse.Namespace, workdir: Path, cpu: int | None) -> list[benchconnect.Idle]:
    """Fresh servers (nothing run on them before) hold ``args.idle`` idle connections each."""
    import uvloop

    found: list[benchconnect.Idle] = []
    for kind in [k for k in ("gate-ws", "node-ws", "echo-ws") if k in args.kinds]:
        with servers([kind], workdir, cpu, args.rate) as procs:
            tgt, proc = target(kind, procs)
            found.append(uvloop.run(benchconnect.hold_idle(kind, proc.proc.pid, tgt.port, tgt.path, args.idle)))
            proc.check_alive()
    return found


def resting_rss(workdir: Path) -> int:
    """RSS in KiB of ``gameserver run`` with every role on the embedded defaults, at rest after its start."""
    data = workdir / "rest"
    argv = [sys.executable, "-m", "gameserver", "run", "--gate-port", "0", "--ws-port", "0", "--http-port", "0"]
    argv += ["--set", "chat.tcp_port=0", "--data-dir", str(data), "--log-level", "warning"]
    proc = ServerProcess("rest", argv, workdir, None, r"http=(?P<http>\d+)")
    try:
        time.sleep(benchconnect.SETTLE * 2)
        return benchconnect.rss_kib(proc.proc.pid)
    finally:
        proc.stop()


# What a process on the embedded defaults cannot do without: the event loop, the codecs, the HTTP server, SQLite
# through SQLAlchemy's asyncio engine, the in-process Redis, the metrics, password hashing and tokens.
FLOOR_IMPORTS = (
    "uvloop, msgpack, prometheus_client, aiohttp.web, sqlalchemy.ext.asyncio, sqlalchemy.dialects.sqlite.aiosqlite,"
    " aiosqlite, fakeredis, argon2, jwt"
)


def floor_rss() -> int:
    """RSS in KiB of a bare interpreter that imports only the libraries of the embedded defaults."""
    code = f"import {FLOOR_IMPORTS}\nprint(open('/proc/self/status').read())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout.split("VmRSS:")[1].split()[0])


def print_memory(idle: Sequence[benchconnect.Idle], rest: int | None) -> None:
    print()
    if rest is not None:
        print(
            f"resting RSS of gameserver run, every role, embedded defaults: {rest / 1024:.1f} MiB "
            f"(target, issue 18: <= 50 MiB: {verdict(rest <= 50 * 1024)})"
        )
        print(f"  floor: a bare python importing {FLOOR_IMPORTS}: {floor_rss() / 1024:.1f} MiB")
    if not idle:
        return
    print(f"idle connections ({idle[0].count} each, fresh servers):")
    header = ("server", "rest MiB", "held MiB", "KiB/conn", "opened in s")
    widths = (9, 8, 8, 8, 11)
    print(fmt_row(header, widths))
    for i in idle:
        cells = (
            i.kind,
            f"{i.rest_kib / 1024:.1f}",
            f"{i.held_kib / 1024:.1f}",
            f"{i.per_connection_kib:.2f}",
            f"{i.seconds:.2f}",
        )
        print(fmt_row(cells, widths))
    for i in idle:
        if i.kind == "gate-ws":
            print(f"  target (issue 18): gate-ws <= 4 KiB per idle connection: {verdict(i.per_connection_kib <= 4.0)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.echo_server:
        echo_server()
        return 0
    if args.bus:
        benchlib.interrupt_on_sigterm()
        return run_scaleout(args)
    import uvloop

    benchlib.interrupt_on_sigterm()  # stop the servers on SIGTERM as on Ctrl-C
    if "node-ws" in args.kinds and (why := benchnode.missing()):
        print(f"note: no Node baseline: {why}")
        args.kinds.remove("node-ws")
    open_files = max(args.storm + STORM_BACKGROUND, args.idle, *args.levels) + OPEN_FILES_SPARE
    benchconnect.raise_open_files(open_files)
    cpus = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and {args.server_cpu, args.client_cpu} <= set(cpus) and args.server_cpu != args.client_cpu
    if not args.no_pin and not pin:
        print(f"note: CPUs {args.server_cpu} and {args.client_cpu} are not both available ({cpus}); not pinning")
    server_cpu = args.server_cpu if pin else None
    if pin:
        os.sched_setaffinity(0, {args.client_cpu})
    print(
        f"gate benchmark: sys.echo closed loop, {args.duration:g}s per scenario after {args.warmup:g}s warm-up, "
        f"{args.rounds} round(s); "
        + (f"servers on CPU {args.server_cpu}, load generator on CPU {args.client_cpu}" if pin else "not pinned")
    )
    print(f"machine: {describe_machine()}")
    print(
        f"request {len(msgpack.packb(REQUEST))} bytes"
        + (f"; baseline {benchnode.versions()}" if "node-ws" in args.kinds else "")
    )
    results: list[Result] = []
    storms: list[Storm] = []
    idle: list[benchconnect.Idle] = []
    rest: int | None = None
    with tempfile.TemporaryDirectory(prefix="gs-bench-") as tmp:
        try:
            if args.idle:
                idle = measure_idle(args, Path(tmp), server_cpu)
                rest = resting_rss(Path(tmp))
            with servers(args.kinds, Path(tmp), server_cpu, args.rate) as procs:
                try:
                    for round_no in range(1, args.rounds + 1):
                        for conns in args.levels:
                            for kind in args.kinds:
                                tgt, proc = target(kind, procs)
                                scenario = run_scenario(tgt, conns, args.warmup, args.duration, proc, server_cpu)
                                result = uvloop.run(scenario)
                                proc.check_alive()
                                results.append(result)
                                print(
                                    f"  round {round_no} {kind:<9} C={conns:<4} {result.rps:>9,.0f} req/s"
                                    f"  {result.us_per_request:5.1f} us/req",
                                    flush=True,
                                )
                        if args.storm:
                            for kind in [k for k in args.kinds if k.endswith("-ws")]:
                                tgt, proc = target(kind, procs)
                                storm = uvloop.run(run_storm(tgt, args.storm, proc))
                                proc.check_alive()
                                storms.append(storm)
                                print(
                                    f"  round {round_no} {kind:<9} storm of {args.storm}: {storm.seconds:.2f} s",
                                    flush=True,
                                )
                except BenchError:
                    for proc in procs.values():
                        if proc.proc.poll() is not None:
                            print(f"--- {proc.name} log:\n{proc.tail()}", file=sys.stderr)
                    raise
        except BenchError as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
    print()
    grouped = by_cell(results)
    if grouped:
        print_table(grouped)
        print_targets(grouped)
    if storms:
        print_storms(storms, args.storm)
    if idle or rest is not None:
        print_memory(idle, rest)
    saturated = [r for r in results if r.conns >= P99_AT and r.server_cpu / r.seconds < 0.9]
    if saturated:
        print(
            "\nnote: the server was under 90% CPU in "
            + ", ".join(sorted({f"{r.kind} C={r.conns}" for r in saturated}))
            + ": the load generator (one process, one CPU), the round trip or another process on the server's"
            " CPU was the limit there; compare us/req, which depends less on it."
        )
    stolen = [r for r in results if r.steal >= STEAL_NOTE]
    if stolen:
        print(
            f"\nnote: the hypervisor took {max(r.steal for r in stolen):.0%} of the server's CPU in "
            + ", ".join(sorted({f"{r.kind} C={r.conns}" for r in stolen}))
            + ": the host is busy and every figure of this run is noisier; compare within a round."
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
