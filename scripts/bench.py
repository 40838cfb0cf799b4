#!/usr/bin/env python
"""Gate benchmark: closed-loop ``sys.echo`` over WebSocket and raw TCP, against a bare websockets echo server.

    .venv/bin/python scripts/bench.py            # full run: C = 1, 50, 500; 5 s per scenario
    .venv/bin/python scripts/bench.py --quick    # 1 s per scenario
    .venv/bin/python scripts/bench.py --duration 10 --concurrency 50,500

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
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import benchlib
import msgpack
from benchlib import HOST, BenchError, ServerProcess, percentile, verdict

KINDS = ("echo-ws", "gate-ws", "gate-tcp", "echo-tcp")
ARGS = {"text": "hello, world", "seq": 12345}
REQUEST = {"id": 1, "fn": "sys.echo", "args": ARGS}

# The targets (issue 2).
WS_VS_ECHO = 1.2
TCP_VS_WS = 1.5
P99_MS = 5.0
P99_AT = 50

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

    @property
    def websocket(self) -> bool:
        return self.kind.endswith("-ws")

    def request(self) -> bytes:
        payload = msgpack.packb(REQUEST)
        return benchlib.ws_client_frame(payload) if self.websocket else len(payload).to_bytes(4, "big") + payload

    def parse(self, buffer: bytes) -> tuple[bytes, int] | None:
        return ws_server_frame(buffer) if self.websocket else tcp_frame(buffer)

    def check(self, payload: bytes) -> None:
        if self.kind.startswith("echo-"):
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
    ]
    return ServerProcess("gate", argv, workdir, cpu, r"gate-tcp=(?P<tcp>\d+), ws=(?P<ws>\d+)")


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
# Report


def fmt_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(
        cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(cells, widths))
    )


def print_table(results: Sequence[Result]) -> None:
    header = ("server", "C", "req/s", "p50 ms", "p99 ms", "srv us/req", "srv cpu", "gen cpu", "steal")
    widths = (9, 4, 8, 7, 7, 10, 7, 7, 5)
    print(fmt_row(header, widths))
    print(fmt_row(["-" * w for w in widths], widths))
    for r in results:
        cells = (
            r.kind,
            str(r.conns),
            f"{r.rps:,.0f}",
            f"{r.percentile(0.5):.3f}",
            f"{r.percentile(0.99):.3f}",
            f"{r.us_per_request:.1f}",
            f"{r.server_cpu / r.seconds:.0%}",
            f"{r.client_cpu / r.seconds:.0%}",
            f"{r.steal:.0%}",
        )
        print(fmt_row(cells, widths))


def print_targets(results: Sequence[Result]) -> None:
    by = {(r.kind, r.conns): r for r in results}
    levels = sorted({r.conns for r in results})
    print()
    print("ratios                     " + "".join(f"{f'C={c}':>10}" for c in levels))
    rows = (
        ("throughput gate-ws/echo-ws", "gate-ws", "echo-ws", "rps"),
        ("throughput gate-tcp/gate-ws", "gate-tcp", "gate-ws", "rps"),
        ("CPU/req echo-ws/gate-ws", "echo-ws", "gate-ws", "us_per_request"),
        ("CPU/req gate-ws/gate-tcp", "gate-ws", "gate-tcp", "us_per_request"),
    )
    ratios: dict[tuple[str, int], float] = {}
    for label, a, b, attr in rows:
        cells = []
        for c in levels:
            if (a, c) in by and (b, c) in by:
                ratios[label, c] = getattr(by[a, c], attr) / getattr(by[b, c], attr)
                cells.append(f"{ratios[label, c]:10.2f}")
            else:
                cells.append(f"{'-':>10}")
        print(f"{label:<27}" + "".join(cells))
    # What each server spends per request beyond the bare TCP echo: the part its own code decides.
    for kind in ("echo-ws", "gate-ws", "gate-tcp"):
        cells = [
            f"{by[kind, c].us_per_request - by['echo-tcp', c].us_per_request:10.1f}"
            if (kind, c) in by and ("echo-tcp", c) in by
            else f"{'-':>10}"
            for c in levels
        ]
        print(f"{f'us/req {kind} - echo-tcp':<27}" + "".join(cells))

    # Throughput targets are judged where the server is saturated (C >= 50); C = 1 measures round trips.
    print()
    print("targets (issue 2; throughput judged at every C >= 50, informational):")
    saturated = [c for c in levels if c >= P99_AT]
    for label, need, key in (
        (f"gate-ws >= {WS_VS_ECHO}x echo-ws throughput", WS_VS_ECHO, "throughput gate-ws/echo-ws"),
        (f"gate-tcp >= {TCP_VS_WS}x gate-ws throughput", TCP_VS_WS, "throughput gate-tcp/gate-ws"),
    ):
        got = [(c, ratios[key, c]) for c in saturated if (key, c) in ratios]
        if not got:
            print(f"  {label:<40} not measured")
            continue
        detail = ", ".join(f"C={c}: {v:.2f}x" for c, v in got)
        print(f"  {label:<40} {verdict(all(v >= need for _, v in got))}  ({detail})")
    print_tcp_budget(by, saturated)
    for kind in ("gate-ws", "gate-tcp"):
        label = f"{kind} p99 <= {P99_MS:g} ms at C={P99_AT}"
        if (kind, P99_AT) not in by:
            print(f"  {label:<40} not measured")
            continue
        p99 = by[kind, P99_AT].percentile(0.99)
        print(f"  {label:<40} {verdict(p99 <= P99_MS)}  ({p99:.3f} ms)")


def print_tcp_budget(by: dict[tuple[str, int], Result], levels: Sequence[int]) -> None:
    """What the TCP/WS target asks of the TCP gate, in server CPU per request, beside what it spends.

    Both gates share decode, dispatch, the handler's task and encode; only the framing differs. With the
    server saturated, throughput ~ 1 / CPU per request, so 1.5x the WebSocket gate's throughput means at most
    its CPU per request / 1.5, of which the bare TCP echo (kernel, loopback, event loop) takes its floor.
    """
    for c in levels:
        if not all((kind, c) in by for kind in ("gate-ws", "gate-tcp", "echo-tcp")):
            continue
        ws, tcp, floor = (by[kind, c].us_per_request for kind in ("gate-ws", "gate-tcp", "echo-tcp"))
        allowed = ws / TCP_VS_WS
        print(
            f"    C={c}: 1.5x needs gate-tcp <= {allowed:.1f} us/req; the echo-tcp floor is {floor:.1f}, leaving"
            f" {allowed - floor:.1f} us of gate work; gate-tcp spends {tcp - floor:.1f}, gate-ws {ws - floor:.1f}"
        )


# ---------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short run: 1 s per scenario, 0.3 s warm-up")
    parser.add_argument("--duration", type=float, help="measured seconds per scenario (default 5, --quick 1)")
    parser.add_argument("--warmup", type=float, help="seconds of load before measuring (default 1, --quick 0.3)")
    parser.add_argument("--concurrency", default="1,50,500", help="comma-separated connection counts")
    parser.add_argument("--servers", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU the servers are pinned to")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU the load generator is pinned to")
    parser.add_argument("--no-pin", action="store_true", help="do not pin anything")
    parser.add_argument("--rate", type=float, default=1e9, help="gate.rate for the gate (high: no throttling)")
    parser.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.duration = args.duration if args.duration is not None else (1.0 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 1.0)
    args.levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
    if not args.levels or min(args.levels) < 1 or max(args.levels) > 5000:
        parser.error("--concurrency: counts between 1 and 5000")
    if unknown := set(args.kinds) - set(KINDS):
        parser.error(f"--servers: unknown {', '.join(sorted(unknown))}")
    if args.duration <= 0 or args.duration > 600 or args.warmup < 0:
        parser.error("--duration: between 0 and 600 seconds; --warmup >= 0")
    return args


@contextlib.contextmanager
def servers(args: argparse.Namespace, workdir: Path, cpu: int | None) -> Iterator[dict[str, ServerProcess]]:
    started: dict[str, ServerProcess] = {}
    try:
        if {"echo-ws", "echo-tcp"} & set(args.kinds):
            started["echo"] = start_echo(workdir, cpu)
        if {"gate-ws", "gate-tcp"} & set(args.kinds):
            started["gate"] = start_gate(workdir, cpu, args.rate)
        yield started
    finally:
        for server in started.values():
            server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.echo_server:
        echo_server()
        return 0
    import uvloop

    benchlib.interrupt_on_sigterm()  # stop the servers on SIGTERM as on Ctrl-C
    cpus = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and {args.server_cpu, args.client_cpu} <= set(cpus) and args.server_cpu != args.client_cpu
    if not args.no_pin and not pin:
        print(f"note: CPUs {args.server_cpu} and {args.client_cpu} are not both available ({cpus}); not pinning")
    server_cpu = args.server_cpu if pin else None
    if pin:
        os.sched_setaffinity(0, {args.client_cpu})
    print(
        f"gate benchmark: sys.echo closed loop, {args.duration:g}s per scenario after {args.warmup:g}s warm-up; "
        + (f"servers on CPU {args.server_cpu}, load generator on CPU {args.client_cpu}" if pin else "not pinned")
    )
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, request {len(msgpack.packb(REQUEST))} bytes")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="gs-bench-") as tmp, servers(args, Path(tmp), server_cpu) as procs:
        try:
            for conns in args.levels:
                for kind in args.kinds:
                    proc = procs[kind.partition("-")[0]]
                    port = proc.ports[kind.partition("-")[2]]
                    target = Target(kind, port, "/gate" if kind == "gate-ws" else "/")
                    scenario = run_scenario(target, conns, args.warmup, args.duration, proc, server_cpu)
                    result = uvloop.run(scenario)
                    proc.check_alive()
                    results.append(result)
                    print(
                        f"  {kind:<9} C={conns:<4} {result.rps:>9,.0f} req/s  {result.us_per_request:5.1f} us/req",
                        flush=True,
                    )
        except BenchError as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            for proc in procs.values():
                if proc.proc.poll() is not None:
                    print(f"--- {proc.name} log:\n{proc.tail()}", file=sys.stderr)
            return 1
    print()
    print_table(results)
    print_targets(results)
    saturated = [r for r in results if r.conns >= P99_AT and r.server_cpu / r.seconds < 0.9]
    if saturated:
        print(
            "\nnote: the server was under 90% CPU in "
            + ", ".join(f"{r.kind} C={r.conns}" for r in saturated)
            + ": the load generator (one process, one CPU), the round trip or another process on the server's"
            " CPU was the limit there; compare us/req, which depends less on it."
        )
    stolen = [r for r in results if r.steal >= STEAL_NOTE]
    if stolen:
        print(
            f"\nnote: the hypervisor took {max(r.steal for r in stolen):.0%} of the server's CPU in "
            + ", ".join(f"{r.kind} C={r.conns}" for r in stolen)
            + ": the host is busy and every figure of this run is noisier; repeat it and take the median."
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
