"""The coverage-guided fuzzer (scripts/fuzz.py, atheris) over every decoding path, on a short budget: nothing but
the documented protocol errors may escape a decoder (issue 12). Longer runs: ``scripts/fuzz.py --seconds 600``."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 15  # seconds for all targets together


def test_the_decoders_survive_a_fuzzing_run(tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        message = "atheris is not installed (scripts/install installs the test extras, atheris among them)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fuzz.py"), "--seconds", str(BUDGET)],
        cwd=tmp_path,  # where libFuzzer would write a crashing input
        capture_output=True,
        text=True,
        timeout=BUDGET * 4 + 60,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-8000:]
    assert "fuzz: 5 of 5 targets clean" in result.stdout
