"""``scripts/bench_chat.py`` runs end to end (servers as subprocesses, real Redis for the nonces) and prints
its table. No figure is checked: timing belongs to the benchmark, not to assertions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.blackbox, pytest.mark.integration]

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench_chat.py"


def test_chat_bench_prints_the_table(redis_url: str) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--clients", "20", "--rate", "20", "--duration", "0.5"]
        + ["--warmup", "0.2", "--redis-url", redis_url, "--server-cpu", "-1", "--load-cpu", "-1"],
        capture_output=True,
        text=True,
        timeout=55,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["scenario", "clients", "msg/s"], result.stdout
    for scenario in ("local-tcp", "local-ws", "redis-tcp", "redis-ws"):
        assert any(line.split()[:2] == [scenario, "21"] for line in lines), (scenario, result.stdout)
    assert "redis-ws vs local-ws" in result.stdout
