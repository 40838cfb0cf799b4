"""`gameserver run` as a subprocess: the token secret at start-up, as an operator meets it."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.blackbox.support import clean_env, run_command
from tests.clients import TcpClient

pytestmark = pytest.mark.blackbox

READY = re.compile(r"^gameserver \S+ node \S+: (.*)$", re.MULTILINE)
CHEAP_HASHING = ["--set", "auth.hash_memory_kib=8", "--set", "auth.hash_time_cost=1"]


def command(data_dir: Path, *extra: str) -> list[str]:
    return run_command(data_dir, *CHEAP_HASHING, *extra)


def test_a_short_secret_stops_start_up_with_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        command(tmp_path / "var", "--set", "auth.secret=short"),
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert "auth.secret: must be at least 32 bytes (256 bits)" in result.stderr
    assert not (tmp_path / "var" / "auth.secret").exists()


@asynccontextmanager
async def server(cwd: Path, data_dir: Path) -> AsyncIterator[dict[str, int]]:
    """Run the server until the block ends (SIGTERM, exit 0); yields its ports from the ready line."""
    process = await asyncio.create_subprocess_exec(
        *command(data_dir), cwd=cwd, env=clean_env(), stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(30):
            while True:
                line = (await process.stderr.readline()).decode()
                if not line:
                    raise AssertionError(f"gameserver exited before it was ready: {''.join(lines)}")
                lines.append(line)
                if match := READY.search(line.strip()):
                    break
        ports = {name: int(port) for name, _, port in (item.partition("=") for item in match.group(1).split(", "))}
        drain = asyncio.create_task(process.stderr.read())  # keep the pipe from filling up
        yield ports
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            returncode = await process.wait()
    await drain
    assert returncode == 0


async def test_the_generated_secret_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    async with server(tmp_path, data_dir) as ports, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{ports['http']}/auth/register"
        async with http.post(url, json={"username": "restart", "password": "correct horse battery"}) as response:
            assert response.status == 201
            account = await response.json()
    secret = (data_dir / "auth.secret").read_bytes()
    async with server(tmp_path, data_dir) as ports:
        tcp = await TcpClient.open(ports["gate-tcp"])
        assert await tcp.call("session.bind", {"token": account["token"]}) == {
            "id": 1,
            "ok": True,
            "data": {"uid": account["uid"]},
        }
        await tcp.close()
    assert (data_dir / "auth.secret").read_bytes() == secret
