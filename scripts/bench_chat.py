#!/usr/bin/env python
"""Chat fan-out benchmark: N logged-in clients in one world, one sender at a fixed rate (docs/chat.md).

    .venv/bin/python scripts/bench_chat.py                 # N = 1000, 110 messages/s, 10 s per scenario
    .venv/bin/python scripts/bench_chat.py --quick         # N = 200, 3 s per scenario
    .venv/bin/python scripts/bench_chat.py --repeat 3      # each scenario 3 times, the median reported
    .venv/bin/python scripts/bench_chat.py --scenarios local-tcp,redis-ws --clients 2000 --rate 50

Scenarios, each over raw TCP and over WebSocket ``/chat``:

- ``local-*``: one ``python -m gameserver run --roles chat`` with the in-process fan-out (``server.bus = local``);
- ``redis-*``: two such servers with ``server.bus = redis``, the clients split between them and the sender on
  the first, so that half of every message's deliveries cross Redis pub/sub.

Servers are pinned to CPU 0 (``--server-cpu``) and this load generator to CPU 1 (``--load-cpu``). Every
message is one ``PUBLIC`` line whose text is the sender's ``perf_counter_ns()``; every client counts the lines
it gets, and one client in ``--probe-every`` (spread over the join order, which is the fan-out order) also
records each message's delivery latency. Reported: deliveries/s in the measured window, the share of the
expected deliveries that arrived, p50/p99 latency, and the servers' CPU time per delivery from
``/proc/<pid>/stat`` (utime + stime, all server processes together).

Targets (informational; the exit status is 0 unless a server failed): server CPU <= 3 us per delivery over TCP
and <= 6 us over WebSocket, >= 100,000 deliveries/s with p99 <= 50 ms, and through Redis within 2x the
in-process CPU per delivery. Redis itself (a shared service) is not pinned and its CPU is not counted.

Nonces are written straight into Redis (``issue_nonce``), so a Redis must be reachable (``--redis-url``,
default redis://127.0.0.1:6379/0; a unique key prefix per run, removed afterwards). Only 127.0.0.1 is used;
the servers are stopped on exit, Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import benchlib
from benchlib import HOST, BenchError, ServerProcess, percentile, verdict

sys.path.insert(0, str(benchlib.ROOT))

from gameserver.features.identity.nonces import issue_nonce
from gameserver.keys import Keys

SCENARIOS = ("local-tcp", "local-ws", "redis-tcp", "redis-ws")
WORLD = 1
ROLES = "chat,worker"  # a chat-only process also works, but today's modules need the worker's resources to load

# The issue's targets (issue 4).
US_PER_DELIVERY = {"tcp": 3.0, "ws": 6.0}
MIN_DELIVERIES = 100_000
P99_MS = 50.0
REDIS_FACTOR = 2.0


# ---------------------------------------------------------------------------------------------------------
# Wire encodings


def line(command: str, payload: str = "") -> bytes:
    return (command.ljust(10) + payload).encode()


TEXT_FIELD = b'"text":"'


# ---------------------------------------------------------------------------------------------------------
# The load generator


class Run(benchlib.LoadRun):
    def __init__(self) -> None:
        super().__init__()
        self.measuring = False
        self.deliveries = 0  # lines received while measuring
        self.latencies: list[int] = []  # ns
        self.stopping = False


class ChatLoad(benchlib.LoadClient):
    """One chat client: log in, then count (and, if a probe, time) every PUBLIC line."""

    run: Run

    def __init__(self, run: Run, websocket: bool, port: int, nonce: str, probe: bool) -> None:
        super().__init__(run)
        self.websocket = websocket
        self.port = port
        self.nonce = nonce
        self.probe = probe
        self.handshaking = websocket
        self.logged_in = False

    def connected(self) -> None:
        if self.websocket:
            self.transport.write(benchlib.ws_handshake(self.port, "/chat"))  # type: ignore[union-attr]
        else:
            self.send(line("LOGIN", self.nonce))

    def send(self, body: bytes) -> None:
        assert self.transport is not None
        self.transport.write(benchlib.ws_client_frame(body, benchlib.OP_TEXT) if self.websocket else body + b"\r\n")

    def data_received(self, data: bytes) -> None:
        if self.pending:
            data = self.pending + data
            self.pending = b""
        if self.handshaking:
            try:
                rest = benchlib.ws_accepted(data, "WebSocket handshake refused")
            except BenchError as exc:
                self._abort(exc)
                return
            if rest is None:
                self.pending = data
                return
            self.handshaking = False
            self.send(line("LOGIN", self.nonce))
            if not rest:
                return
            data = rest
        lines = self._ws_lines(data) if self.websocket else self._tcp_lines(data)
        if not self.logged_in:
            if not lines:
                return
            first = lines.pop(0)
            if not first.startswith(b"OK        "):
                self._abort(BenchError(f"LOGIN refused: {first[:80]!r}"))
                return
            self.logged_in = True
            self.ready.set_result(None)
        run = self.run
        if run.measuring and lines:
            run.deliveries += len(lines)
            if self.probe:
                now = time.perf_counter_ns()
                for item in lines:
                    start = item.find(TEXT_FIELD) + len(TEXT_FIELD)
                    run.latencies.append(now - int(item[start : item.index(b'"', start)]))

    def _tcp_lines(self, data: bytes) -> list[bytes]:
        lines = data.split(b"\r\n")
        self.pending = lines.pop()
        return lines

    def _ws_lines(self, data: bytes) -> list[bytes]:
        lines = []
        pos, end = 0, len(data)
        while end - pos >= 2:
            size, start = data[pos + 1], pos + 2
            if size == 126:
                if end - pos < 4:
                    break
                size, start = int.from_bytes(data[pos + 2 : pos + 4], "big"), pos + 4
            elif size == 127:
                if end - pos < 10:
                    break
                size, start = int.from_bytes(data[pos + 2 : pos + 10], "big"), pos + 10
            if start + size > end:
                break
            if data[pos] == 0x81:
                lines.append(data[start : start + size])
            elif data[pos] == 0x88:
                self._abort(BenchError(f"the server closed a WebSocket: {data[start : start + size]!r}"))
                return []
            pos = start + size
        self.pending = data[pos:]
        return lines

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(BenchError(f"closed before the login was answered ({exc})"))
        elif not self.run.stopping:
            self.run.fail(BenchError(f"the server closed a connection ({exc})"))


# ---------------------------------------------------------------------------------------------------------
# Server processes


def start_chat(name: str, workdir: Path, cpu: int | None, settings: dict[str, str]) -> ServerProcess:
    """``python -m gameserver run --roles chat`` pinned to one CPU; its ports come from its start-up line."""
    data_dir = workdir / name
    argv = [sys.executable, "-m", "gameserver", "run", "--roles", ROLES, "--host", HOST]
    argv += ["--gate-port", "0", "--ws-port", "0", "--http-port", "0", "--data-dir", str(data_dir)]
    argv += ["--log-level", "warning"]
    for key, value in settings.items():
        argv += ["--set", f"{key}={value}"]
    return ServerProcess(name, argv, workdir, cpu, r"chat-tcp=(?P<tcp>\d+)", r"\bws=(?P<ws>\d+)")


# ---------------------------------------------------------------------------------------------------------
# One scenario


@dataclass
class Result:
    scenario: str
    clients: int
    rate: float
    seconds: float
    sent: int
    deliveries: int
    latencies: list[int]
    server_cpu: float
    server_sys: float  # the kernel's share of server_cpu (sends on loopback include the receiving side's work)
    load_cpu: float
    runs: list[Result] = field(default_factory=list)

    @property
    def transport(self) -> str:
        return self.scenario.rpartition("-")[2]

    @property
    def per_second(self) -> float:
        return self.deliveries / self.seconds

    @property
    def delivered(self) -> float:
        expected = self.sent * self.clients
        return self.deliveries / expected if expected else float("nan")

    def percentile(self, q: float) -> float:
        return percentile(self.latencies, q) / 1e6

    @property
    def us_per_delivery(self) -> float:
        return self.server_cpu / self.deliveries * 1e6 if self.deliveries else float("nan")


async def run_scenario(scenario: str, args: argparse.Namespace, workdir: Path) -> Result:
    import redis.asyncio

    bus, _, kind = scenario.partition("-")
    websocket = kind == "ws"
    prefix = f"bench:chat:{uuid.uuid4().hex[:12]}:"
    settings = {
        "redis.url": args.redis_url,
        "redis.prefix": prefix,
        "server.bus": bus,
        "chat.tcp_port": "0",
        "chat.rate": "1000000.0",
        "chat.burst": "1000000",
        "chat.max_connections": "1000000",
        "chat.max_per_address": "0",  # every client comes from 127.0.0.1
        "gate.max_per_address": "0",  # the WebSocket clients, on the gate's port
        "chat.send_queue": str(args.send_queue),
        "chat.flush_interval": str(args.flush_interval),
        "server.shutdown_grace": "1.0",
    }
    servers: list[ServerProcess] = []
    clients: list[ChatLoad] = []
    run = Run()
    redis_client = redis.asyncio.Redis.from_url(args.redis_url)
    keys = Keys(prefix)
    loop = asyncio.get_running_loop()
    try:
        for name in ("edge-a", "edge-b") if bus == "redis" else ("edge",):
            servers.append(start_chat(name, workdir, args.server_cpu, {**settings, "server.node_id": name}))
        total = args.clients + 1  # the sender is a member of the world too

        async def open_client(index: int) -> ChatLoad:
            server = servers[index % len(servers)]
            port = server.ports["ws" if websocket else "tcp"]
            identity = {"uid": index + 1, "name": f"bot{index}", "world": WORLD, "family": None}
            nonce = await issue_nonce(redis_client, keys, identity, 120.0)
            client = ChatLoad(run, websocket, port, nonce, probe=index % args.probe_every == 0)
            await loop.create_connection(lambda: client, HOST, port)
            return client

        for first in range(0, total, benchlib.CONNECT_BATCH):
            batch = await asyncio.gather(
                *(open_client(i) for i in range(first, min(total, first + benchlib.CONNECT_BATCH)))
            )
            async with asyncio.timeout(benchlib.START_TIMEOUT):
                await asyncio.gather(*(client.ready for client in batch))
            clients.extend(batch)
        sender = clients[0]  # on the first server
        sent = 0
        interval = 1.0 / args.rate
        stop_at = loop.time() + args.warmup + args.duration
        measure_at = loop.time() + args.warmup
        window: dict[str, float] = {}
        next_send = loop.time()
        while True:
            now = loop.time()
            if now >= stop_at:
                break
            if not run.measuring and now >= measure_at:
                window["cpu0"] = sum(s.cpu_seconds() for s in servers)
                window["sys0"] = sum(s.cpu_split()[1] for s in servers)
                window["load0"] = time.process_time()
                window["t0"] = time.perf_counter()
                sent = 0
                run.measuring = True
            if now < next_send:
                await asyncio.sleep(next_send - now)
                continue
            sender.send(line("PUBLIC", str(time.perf_counter_ns())))
            sent += 1
            next_send += interval
            if run.error is not None:
                raise run.error
        # Let the last messages arrive (up to DRAIN_TIMEOUT), then close the window.
        deadline = loop.time() + benchlib.DRAIN_TIMEOUT
        while run.deliveries < sent * total and loop.time() < deadline:
            await asyncio.sleep(0.01)
        run.measuring = False
        seconds = time.perf_counter() - window["t0"]
        server_cpu = sum(s.cpu_seconds() for s in servers) - window["cpu0"]
        server_sys = sum(s.cpu_split()[1] for s in servers) - window["sys0"]
        load_cpu = time.process_time() - window["load0"]
        if run.error is not None:
            raise run.error
        for server in servers:
            server.check_alive()
        # The drain time counts in the window: deliveries/s is what was sustained, not a burst.
        return Result(
            scenario, total, args.rate, seconds, sent, run.deliveries, run.latencies, server_cpu, server_sys, load_cpu
        )
    finally:
        run.stopping = True
        await benchlib.close_all(clients)
        for server in servers:
            server.stop()
        with contextlib.suppress(Exception):
            async for key in redis_client.scan_iter(match=f"{prefix}*"):
                await redis_client.delete(key)
        await redis_client.aclose()


# ---------------------------------------------------------------------------------------------------------
# Report


def median_result(results: list[Result]) -> Result:
    """The run with the median CPU per delivery, carrying all the runs."""
    ordered = sorted(results, key=lambda r: r.us_per_delivery)
    chosen = ordered[len(ordered) // 2]
    chosen.runs = results
    return chosen


def report(results: dict[str, Result]) -> list[str]:
    lines = [
        f"{'scenario':<10} {'clients':>7} {'msg/s':>6} {'deliveries/s':>12} {'arrived':>8} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'srv us/dlv':>10} {'of it sys':>9} {'srv cpu':>8} {'gen cpu':>8}  runs (srv us/dlv)",
    ]
    for result in results.values():
        runs = ", ".join(f"{r.us_per_delivery:.2f}" for r in result.runs)
        lines.append(
            f"{result.scenario:<10} {result.clients:>7} {result.rate:>6g} {result.per_second:>12,.0f} "
            f"{result.delivered:>8.1%} {result.percentile(0.5):>7.2f} {result.percentile(0.99):>7.2f} "
            f"{result.us_per_delivery:>10.2f} {result.server_sys / result.deliveries * 1e6:>9.2f} "
            f"{result.server_cpu / result.seconds:>8.0%} "
            f"{result.load_cpu / result.seconds:>8.0%}  {runs}"
        )
    lines.append("")
    lines.append("targets:")
    for result in results.values():
        limit = US_PER_DELIVERY[result.transport]
        lines.append(
            f"  {result.scenario:<10} server CPU {result.us_per_delivery:.2f} us/delivery <= {limit:g} us: "
            f"{verdict(result.us_per_delivery <= limit)}; "
            f"{result.per_second:,.0f} deliveries/s >= {MIN_DELIVERIES:,} with p99 {result.percentile(0.99):.1f} ms "
            f"<= {P99_MS:g} ms: {verdict(result.per_second >= MIN_DELIVERIES and result.percentile(0.99) <= P99_MS)}"
        )
    for kind in ("tcp", "ws"):
        local, remote = results.get(f"local-{kind}"), results.get(f"redis-{kind}")
        if local and remote:
            # CPU time is counted in clock ticks (10 ms): a very short run may see none.
            ratio = remote.us_per_delivery / local.us_per_delivery if local.us_per_delivery else float("nan")
            lines.append(
                f"  redis-{kind} vs local-{kind}: {ratio:.2f}x the CPU per delivery, p99 "
                f"{remote.percentile(0.99):.1f} vs {local.percentile(0.99):.1f} ms (within {REDIS_FACTOR:g}x): "
                f"{verdict(ratio <= REDIS_FACTOR)}"
            )
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 200, 1 s warm-up, 3 s per scenario")
    parser.add_argument("--clients", type=int, help="receiving clients (default 1000; --quick 200)")
    parser.add_argument("--rate", type=float, default=110.0, help="messages per second from the sender")
    parser.add_argument("--duration", type=float, help="measured seconds per scenario (default 10; --quick 3)")
    parser.add_argument("--warmup", type=float, help="seconds of sending before measuring (default 2; --quick 1)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario; the median is reported")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"subset of {','.join(SCENARIOS)}")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--send-queue", type=int, default=262144, help="the servers' chat.send_queue")
    parser.add_argument(
        "--flush-interval", type=float, default=0.03, help="the servers' chat.flush_interval (0: write each at once)"
    )
    parser.add_argument("--probe-every", type=int, default=10, help="one client in this many records latency")
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU for the servers (-1: not pinned)")
    parser.add_argument("--load-cpu", type=int, default=1, help="CPU for this load generator (-1: not pinned)")
    args = parser.parse_args(argv)
    args.clients = args.clients or (200 if args.quick else 1000)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    args.server_cpu = None if args.server_cpu < 0 else args.server_cpu
    args.load_cpu = None if args.load_cpu < 0 else args.load_cpu
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    args.scenarios = scenarios
    return args


async def bench(args: argparse.Namespace) -> dict[str, Result]:
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="bench-chat-") as tmp:
        for scenario in args.scenarios:
            runs = []
            for n in range(args.repeat):
                result = await run_scenario(scenario, args, Path(tmp))
                print(
                    f"  {scenario} run {n + 1}/{args.repeat}: {result.per_second:,.0f} deliveries/s, "
                    f"p99 {result.percentile(0.99):.2f} ms, {result.us_per_delivery:.2f} us/delivery",
                    file=sys.stderr,
                    flush=True,
                )
                runs.append(result)
            results[scenario] = median_result(runs)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    benchlib.interrupt_on_sigterm()  # stop the servers on SIGTERM as on Ctrl-C
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        uvloop = None
    if args.load_cpu is not None:
        os.sched_setaffinity(0, {args.load_cpu})
    with contextlib.suppress(Exception):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * args.clients + 1024)), hard))
    url = urllib.parse.urlsplit(args.redis_url)
    try:
        with socket.create_connection((url.hostname or HOST, url.port or 6379), 1.0):
            pass
    except OSError:
        print(f"bench_chat: Redis is not reachable at {args.redis_url}; start it (scripts/services)", file=sys.stderr)
        return 1
    print(
        f"chat fan-out: {args.clients} clients + 1 sender at {args.rate:g} msg/s, {args.warmup:g}+{args.duration:g} s, "
        f"servers on CPU {args.server_cpu}, load on CPU {args.load_cpu}, {args.repeat} run(s) each",
        file=sys.stderr,
        flush=True,
    )
    try:
        results = uvloop.run(bench(args)) if uvloop is not None else asyncio.run(bench(args))
    except BenchError as exc:
        print(f"bench_chat: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print("\n".join(report(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
