"""Every Prometheus metric of the process, in one registry (served at ``GET /metrics``).

Per-function request counts and latencies are kept in plain attributes (:class:`FunctionStats`) and turned
into Prometheus families only when scraped: the request path pays an add and a bisect, not the locks and
label lookups of prometheus-client's own metric objects.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

LATENCY_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNKNOWN_FN = "(unknown)"


class FunctionStats:
    """Calls of one gate function: outcomes and the latency histogram of successful calls."""

    __slots__ = ("fn", "ok", "errors", "buckets", "total_seconds")

    def __init__(self, fn: str) -> None:
        self.fn = fn
        self.ok = 0
        self.errors: dict[str, int] = {}
        self.buckets = [0] * (len(LATENCY_BOUNDS) + 1)
        self.total_seconds = 0.0

    def observe_ok(self, seconds: float) -> None:
        self.ok += 1
        self.total_seconds += seconds
        self.buckets[bisect_left(LATENCY_BOUNDS, seconds)] += 1

    def observe_error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1


FUNCTIONS: dict[str, FunctionStats] = {}


def function_stats(fn: str) -> FunctionStats:
    stats = FUNCTIONS.get(fn)
    if stats is None:
        stats = FUNCTIONS[fn] = FunctionStats(fn)
    return stats


class _FunctionCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "gameserver_requests",
            "Gate requests answered, by function and outcome (ok or an error code)",
            labels=["fn", "outcome"],
        )
        latency = HistogramMetricFamily(
            "gameserver_request_seconds", "Time from decoded request to successful reply, by function", labels=["fn"]
        )
        for stats in list(FUNCTIONS.values()):
            requests.add_metric([stats.fn, "ok"], stats.ok)
            for code, count in list(stats.errors.items()):
                requests.add_metric([stats.fn, code], count)
            cumulative, running = [], 0
            for bound, count in zip((*LATENCY_BOUNDS, float("inf")), stats.buckets, strict=True):
                running += count
                cumulative.append((str(bound) if bound != float("inf") else "+Inf", running))
            latency.add_metric([stats.fn], cumulative, stats.total_seconds)
        yield requests
        yield latency


REGISTRY.register(_FunctionCollector())


class ChatStats:
    """The chat edge's counters: plain ints on the fan-out path, turned into metrics when scraped."""

    __slots__ = ("messages", "deliveries", "dropped", "rate_limited", "disconnects", "connections", "publish_failed")

    def __init__(self) -> None:
        self.messages = 0  # published by this process
        self.deliveries = 0  # lines written to this process's clients, one per recipient
        self.dropped = 0  # lines not written: the recipient was over chat.send_queue
        self.rate_limited = 0
        self.disconnects: dict[str, int] = {}  # closed by the server, by reason
        self.connections = {"tcp": 0, "ws": 0}  # logged in now
        self.publish_failed = 0  # published here but never reached Redis (gameserver/bus/fanout.py)

    def disconnected(self, reason: str) -> None:
        self.disconnects[reason] = self.disconnects.get(reason, 0) + 1


CHAT = ChatStats()


class _ChatCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        stats = CHAT
        yield CounterMetricFamily(
            "gameserver_chat_messages", "Chat messages published by this process", value=stats.messages
        )
        yield CounterMetricFamily(
            "gameserver_chat_deliveries", "Chat lines written to clients, one per recipient", value=stats.deliveries
        )
        yield CounterMetricFamily(
            "gameserver_chat_dropped",
            "Chat lines not written because the recipient was over chat.send_queue",
            value=stats.dropped,
        )
        yield CounterMetricFamily(
            "gameserver_chat_rate_limited", "Chat messages answered ERROR rate_limited", value=stats.rate_limited
        )
        yield CounterMetricFamily(
            "gameserver_chat_publish_failed",
            "Chat messages (and family-move notices) published by this process that never reached Redis: "
            "lost for every recipient",
            value=stats.publish_failed,
        )
        disconnects = CounterMetricFamily(
            "gameserver_chat_disconnects",
            "Chat connections closed by the server, by reason (slow, abuse, violation)",
            labels=["reason"],
        )
        for reason, count in list(stats.disconnects.items()):
            disconnects.add_metric([reason], count)
        yield disconnects
        connections = GaugeMetricFamily(
            "gameserver_chat_connections", "Logged-in chat connections, by transport", labels=["transport"]
        )
        for transport, count in list(stats.connections.items()):
            connections.add_metric([transport], count)
        yield connections


REGISTRY.register(_ChatCollector())
# process_* (CPU, memory, open files, start time) and python_* (version, garbage collector), as on any exporter.
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

INFLIGHT = Gauge("gameserver_inflight_requests", "Requests being handled (the worker queue)", registry=REGISTRY)
CONNECTIONS = Gauge("gameserver_connections", "Open client connections, by listener", ["listener"], registry=REGISTRY)
VIOLATIONS = Counter(
    "gameserver_protocol_violations",
    "Connections closed for breaking the wire contract, by listener and close code",
    ["listener", "code"],
    registry=REGISTRY,
)
DB_RETRIES = Counter(
    "gameserver_db_retries",
    "Transactions run again by db.run() after losing a lock conflict (deadlock, lock wait timeout, SQLite busy)",
    registry=REGISTRY,
)
STARTED = time.time()
RESUMABLE = Gauge(
    "gameserver_resumable_sessions",
    "Gate sessions that survive a dropped connection, attached or not",
    registry=REGISTRY,
)
DETACHED = Gauge(
    "gameserver_detached_sessions", "Resumable sessions whose connection dropped, waiting for session.resume",
    registry=REGISTRY,
)  # fmt: skip
RESUMES = Counter(
    "gameserver_resumes", "session.resume calls, by outcome (ok or the failure's reason)", ["outcome"],
    registry=REGISTRY,
)  # fmt: skip
REPLAYED = Counter(
    "gameserver_replayed_messages", "Messages kept for a dropped session and sent again after its resume",
    registry=REGISTRY,
)  # fmt: skip
UPTIME = Gauge("gameserver_uptime_seconds", "Seconds since this process started", registry=REGISTRY)
UPTIME.set_function(lambda: time.time() - STARTED)
RELOADS = Counter(
    "gameserver_reloads",
    "Hot reloads without a restart: what (modules, game_config) and outcome (ok, error: the old version stays)",
    ["what", "outcome"],
    registry=REGISTRY,
)
for _what in ("modules", "game_config"):
    for _outcome in ("ok", "error"):
        RELOADS.labels(_what, _outcome)
JOB_RUNS = Counter(
    "gameserver_job_runs",
    "Background job runs finished by this process, by job and outcome (ok; failed: raised or timed out)",
    ["job", "outcome"],
    registry=REGISTRY,
)
JOB_RETRIES = Counter(
    "gameserver_job_retries",
    "Failed job runs scheduled to run again after a backoff, by job",
    ["job"],
    registry=REGISTRY,
)
JOB_DEAD = Counter(
    "gameserver_job_dead",
    "Jobs moved to the dead-letter stream after their last try (or undecodable), by job",
    ["job"],
    registry=REGISTRY,
)
JOB_QUEUE = Gauge(
    "gameserver_job_queue",
    "Jobs in Redis as a worker of this process last counted them (every jobs.poll): ready (waiting or running), "
    "delayed (not due yet, or waiting for a retry), dead",
    ["state"],
    registry=REGISTRY,
)
