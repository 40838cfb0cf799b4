"""Throw-away MariaDB, Redis and NATS servers owned by one test, to stop and restart at will.

The machine's shared services are never stopped: these run from a temp dir on a free port, as child
processes of the test, and are killed by PID at teardown.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def require_binary(name: str) -> str:
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/local/sbin")
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {'mariadb-server' if 'maria' in name else name})")
    return path


class PrivateServer:
    """A server process on ``port`` that can be killed (SIGKILL, as a crash) and started again."""

    name = "server"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    async def start(self) -> None:
        assert self.process is None, f"{self.name} is already running"
        log = open(self.root / f"{self.name}.out", "ab")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        log.close()
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while not await self._accepts():
                    if self.process.poll() is not None:
                        raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.output()}")
                    await asyncio.sleep(0.02)  # polling for the port; nothing asserts on elapsed time
        except BaseException:
            self.kill()
            raise

    async def _accepts(self) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        writer.close()
        return True

    def kill(self) -> None:
        """SIGKILL by PID and reap: the server vanishes as in a crash, its sockets reset by the kernel."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def freeze(self) -> None:
        """SIGSTOP: the server hangs. The kernel still accepts its connections; nothing answers on them."""
        assert self.process is not None, f"{self.name} is not running"
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT: the server carries on where it stopped."""
        assert self.process is not None, f"{self.name} is not running"
        os.kill(self.process.pid, signal.SIGCONT)

    def output(self) -> str:
        path = self.root / f"{self.name}.out"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


class PrivateMariadb(PrivateServer):
    """``mariadbd`` on an empty data dir, without grant tables (anyone connects as root, no password)."""

    name = "mariadbd"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.binary = require_binary("mariadbd")
        (root / "data").mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        command = [
            self.binary,
            "--no-defaults",  # ignore /etc/mysql: nothing of the shared server's settings
            f"--datadir={self.root / 'data'}",
            f"--socket={self.root / 'mariadbd.sock'}",
            f"--pid-file={self.root / 'mariadbd.pid'}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            "--skip-grant-tables",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=16M",
            "--innodb-log-file-size=4M",
        ]
        if os.geteuid() == 0:
            command.append("--user=root")  # mariadbd refuses to run as root unless told to
        return command

    def url(self, database: str) -> str:
        return f"mysql+asyncmy://root@127.0.0.1:{self.port}/{database}"

    async def create_database(self, name: str) -> None:
        import asyncmy

        conn = await asyncmy.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=5)
        try:
            async with conn.cursor() as cursor:
                await cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
        finally:
            conn.close()


class PrivateRedis(PrivateServer):
    name = "redis-server"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.binary = require_binary("redis-server")
        root.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class PrivateNats(PrivateServer):
    """``nats-server`` with JetStream, its store under the test's dir."""

    name = "nats-server"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.binary = require_binary("nats-server")
        root.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.root / "js")]

    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


@asynccontextmanager
async def black_hole() -> AsyncIterator[int]:
    """The port of a TCP server that accepts connections and never answers: a backend that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
