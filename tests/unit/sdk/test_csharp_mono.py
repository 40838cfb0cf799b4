"""The C# SDK's codecs and a generated layer, compiled by mono's mcs and run without a server (Units.cs), and
checked against Python's msgpack and json both ways."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import msgpack
import pytest

from gameserver.sdk import csharp
from tests.conftest import IN_CI
from tests.unit.sdk.shop import shop_api

ROOT = Path(__file__).resolve().parents[3]
RUNTIME = ROOT / "clients" / "csharp" / "Runtime"
UNITS = Path(__file__).parent / "csharp" / "Units.cs"
SCRIPTED_GATE = Path(__file__).parent / "csharp" / "ScriptedGate.cs"  # resume against a scripted peer
NET_HTTP = Path("/usr/lib/mono/4.5/System.Net.Http.dll")  # libmono-system-net-http4.0-cil (mono-devel has it)

SAMPLE: dict[str, Any] = {
    "id": 1,
    "fn": "family.create",
    "args": {
        "name": "é ✓ 😀",
        "ints": [0, 127, 128, 255, 256, 65535, 65536, 2**32, 2**63 - 1, 2**64 - 1],
        "negatives": [-1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63)],
        "floats": [0.5, -1.25e300],
        "flags": [True, False, None],
        "short": "x" * 31,
        "str8": "y" * 40,
        "str16": "z" * 300,
        "nested": {"a": {"b": []}, "many": {f"k{i}": i for i in range(20)}},
    },
    "bin": b"\x00\x01",
}


def require_mcs() -> tuple[str, str]:
    mcs, mono = shutil.which("mcs"), shutil.which("mono")
    if mcs and mono and NET_HTTP.exists():
        return mcs, mono
    message = (
        "mono is not installed (apt-get install mono-mcs libmono-system-net-http4.0-cil; scripts/services does in CI)"
    )
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def test_the_codecs_and_a_generated_layer_under_mono(tmp_path: Path) -> None:
    mcs, mono = require_mcs()
    generated = tmp_path / "generated"
    csharp.write(csharp.render(shop_api()), generated)
    exe = tmp_path / "Units.exe"
    sources = [str(path) for path in sorted(RUNTIME.glob("*.cs"))]  # the runtime without its checked-in layer
    command = [
        mcs,
        "-target:exe",
        "-warnaserror+",
        "-r:System.Net.Http.dll",
        f"-out:{exe}",
        *sources,
        str(UNITS),
        str(SCRIPTED_GATE),
    ]
    command += [str(path) for path in sorted(generated.glob("*.cs"))]
    compiled = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    packed = msgpack.packb(SAMPLE)
    run = subprocess.run([mono, str(exe), packed.hex()], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    as_json = {**SAMPLE, "bin": base64.b64encode(SAMPLE["bin"]).decode()}  # JSON carries bytes as base64
    assert json.loads(lines["json"]) == as_json
    assert bytes.fromhex(lines["msgpack"]) == packed  # the same smallest forms as msgpack-python
