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
