"""``scripts/bench.py --quick`` runs end to end and prints its table. No figure is checked: timing belongs to
the benchmark, not to assertions (STYLE.md, "Tests in layers")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.blackbox

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench.py"


def test_quick_bench_prints_the_table() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--duration", "0.2", "--warmup", "0.05", "--concurrency", "1,3"],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:4] == ["server", "C", "req/s", "p50"] for line in lines), result.stdout
    for server in ("echo-ws", "gate-ws", "gate-tcp"):
        for conns in ("1", "3"):
            assert any(line.split()[:2] == [server, conns] for line in lines), (server, conns, result.stdout)
    assert "gate-ws p99 <= 5 ms at C=50" in result.stdout  # the targets are listed, here as not measured


def test_node_baseline_rounds_storm_and_idle_memory() -> None:
    """``--baseline node`` installs ws and msgpackr into its cache and runs them beside the gate; ``--rounds`` gives
    medians with the spread; ``--storm`` and ``--idle`` report their tables. Figures are not checked."""
    import shutil

    from tests.conftest import IN_CI

    if shutil.which("node") is None or shutil.which("npm") is None:
        message = "node and npm are not installed (apt-get install nodejs npm)"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    argv = ["--servers", "gate-ws", "--baseline", "node", "--rounds", "2", "--concurrency", "2"]
    argv += ["--duration", "0.2", "--warmup", "0.05", "--storm", "30", "--idle", "30"]
    result = subprocess.run([sys.executable, str(BENCH), *argv], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "baseline node v" in out and "ws 8." in out and "msgpackr " in out
    assert "median (lowest-highest) of 2 rounds" in out
    rows = [line.split() for line in out.splitlines()]
    assert any(row[:2] == ["node-ws", "2"] for row in rows) and any(row[:2] == ["gate-ws", "2"] for row in rows)
    assert any(line.startswith("CPU/req gate-ws/node-ws") for line in out.splitlines())
    assert "gate-ws C=2" in out  # the issue-18 verdict line
    assert "reconnect storm: 30 WebSocket handshakes at once" in out
    assert any(row[:1] == ["gate-ws"] and len(row) >= 7 for row in rows)
    assert "resting RSS of gameserver run, every role" in out
    assert "idle connections (30 each, fresh servers):" in out
