"""`gameserver run` as a subprocess, driven like a game client (Pitaya's e2e table: fn, args, exact reply)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest
from websockets.exceptions import ConnectionClosed

from tests.blackbox.support import clean_env, run_command
from tests.clients import RawWebSocket, TcpClient, WsClient
from tests.fixtures.modules import PATH as FIXTURE_MODULES

pytestmark = pytest.mark.blackbox

START_TIMEOUT = 30.0
GRACE = 3.0
EXIT_MARGIN = 2.0  # after App.stop() returns (within the grace): the interpreter's own teardown


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    tcp: int
    ws: int
    http: int
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(tmp: Path, *settings: str) -> Server:
    """Start `gameserver run` on free ports and return once /healthz answers 200."""
    tcp, ws, http = free_ports(3)
    log = tmp / "server.log"
    command = run_command(
        tmp / "var",
        "--set",
        f"modules.paths={FIXTURE_MODULES}",
        "--set",
        f"server.shutdown_grace={GRACE}",
        *settings,
        gate=tcp,
        ws=ws,
        http=http,
    )
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=tmp, stdout=out, stderr=subprocess.STDOUT, env=clean_env())
    server = Server(process, tcp, ws, http, log)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise AssertionError(f"gameserver exited with {process.returncode}:\n{server.output()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=1) as response:
                if response.status == 200:
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"gameserver not healthy within {START_TIMEOUT}s:\n{server.output()}")
        time.sleep(0.05)


def stop_server(server: Server) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            return server.process.wait(timeout=GRACE + 10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
            raise AssertionError(f"gameserver ignored SIGTERM:\n{server.output()}") from None
    return server.process.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("gameserver"))
    yield running
    assert stop_server(running) == 0, running.output()


def ok(data: Any) -> dict[str, Any]:
    return {"ok": True, "data": data}


def err(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


INTERNAL = err("internal", "programming error")

# fn, args, the exact reply without its id
TABLE: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("sys.echo", {}, ok({})),
    (
        "sys.echo",
        {"a": 1, "nested": {"list": [1, "two", None, True, 2.5]}},
        ok({"a": 1, "nested": {"list": [1, "two", None, True, 2.5]}}),
    ),
    ("sys.echo", {"unicode": "héllo wörld ✓"}, ok({"unicode": "héllo wörld ✓"})),
    ("testkit.add", {"a": 2, "b": 3}, ok(5)),
    ("testkit.add", {"a": -7}, ok(-7)),
    ("testkit.add", {}, err("bad_request", "missing argument a for testkit.add")),
    ("testkit.add", {"a": 1, "c": 2}, err("bad_request", "unknown argument c for testkit.add")),
    ("testkit.add", {"a": "1"}, err("bad_request", "a must be an integer")),
    ("testkit.add", {"a": True}, err("bad_request", "a must be an integer")),
    ("testkit.add", {"a": 1.5}, err("bad_request", "a must be an integer")),
    ("nope.nope", {}, err("unknown_function", "no function nope.nope")),
    ("sys.nope", {"a": 1}, err("unknown_function", "no function sys.nope")),
    ("testkit.whoami", {}, err("unauthorized", "login required")),
    ("testkit.whoami", {"bogus": 1}, err("unauthorized", "login required")),  # login is checked before args
    ("testkit.crash", {}, INTERNAL),
    ("testkit.unencodable", {}, INTERNAL),
    ("testkit.hang", {}, err("timeout", "no result within the deadline")),
    ("testkit.redis_down", {}, err("unavailable", "a backend is unavailable")),
    ("testkit.db_down", {}, err("unavailable", "a backend is unavailable")),
]

# whole request maps that are not valid requests, and the exact reply
ENVELOPES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"fn": "sys.echo"}, {"id": None, **err("bad_request", "id must be an integer")}),
    ({"id": "1", "fn": "sys.echo"}, {"id": None, **err("bad_request", "id must be an integer")}),
    ({"id": True, "fn": "sys.echo"}, {"id": None, **err("bad_request", "id must be an integer")}),
    ({"id": 1.5, "fn": "sys.echo"}, {"id": None, **err("bad_request", "id must be an integer")}),
    ({"id": 9}, {"id": 9, **err("bad_request", "fn must be a string")}),
    ({"id": 9, "fn": ["sys.echo"]}, {"id": 9, **err("bad_request", "fn must be a string")}),
    ({"id": 9, "fn": "sys.echo", "args": [1]}, {"id": 9, **err("bad_request", "args must be a map")}),
    ({"id": 9, "fn": "sys.echo", "token": 5}, {"id": 9, **err("bad_request", "token must be a string")}),
    ({"id": 9, "fn": "sys.echo", "args": None}, {"id": 9, **ok({})}),
    ({"id": 9, "fn": "nope", "args": "x"}, {"id": 9, **err("bad_request", "args must be a map")}),
]

TRANSPORTS = ["tcp", "ws-binary", "ws-text"]


async def connect(server: Server, transport: str) -> TcpClient | WsClient:
    if transport == "tcp":
        return await TcpClient.open(server.tcp)
    return await WsClient.open(server.ws, binary=transport == "ws-binary")


async def send(client: TcpClient | WsClient, message: dict[str, Any]) -> None:
    if isinstance(client, TcpClient):
        client.send(message)
    else:
        await client.send(message)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_table(server: Server, transport: str) -> None:
    client = await connect(server, transport)
    for request_id, (fn, args, expected) in enumerate(TABLE, start=1):
        await send(client, {"id": request_id, "fn": fn, "args": args})
        reply = await client.recv()
        if expected is INTERNAL:  # production: the message exactly, and the log line's correlation id
            cid = reply["error"].pop("cid")
            assert cid.endswith(f"-{request_id}") and f"correlation id {cid}" in server.output(), reply
        assert reply == {"id": request_id, **expected}, fn
    await client.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_envelopes(server: Server, transport: str) -> None:
    client = await connect(server, transport)
    for message, expected in ENVELOPES:
        await send(client, message)
        assert await client.recv() == expected, message
    await client.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pipelined_requests_are_matched_by_id(server: Server, transport: str) -> None:
    client = await connect(server, transport)
    await send(client, {"id": 1000, "fn": "testkit.sleep", "args": {"seconds": 0.1}})
    for request_id in range(1, 101):
        await send(client, {"id": request_id, "fn": "testkit.add", "args": {"a": request_id, "b": 1}})
    replies = [await client.recv() for _ in range(101)]
    assert {reply["id"]: reply["data"] for reply in replies} == {1000: 0.1, **{i: i + 1 for i in range(1, 101)}}
    await client.close()


async def test_sys_time(server: Server) -> None:
    client = await TcpClient.open(server.tcp)
    before = time.time_ns() // 1_000_000
    reply = await client.call("sys.time")
    assert reply["ok"] is True and before - 5_000 <= reply["data"] <= time.time_ns() // 1_000_000 + 5_000
    await client.close()


async def test_bad_input_closes_only_that_connection(server: Server) -> None:
    witnesses = [await connect(server, transport) for transport in TRANSPORTS]
    for witness in witnesses:
        assert (await witness.call("sys.echo", {"before": True}))["ok"] is True

    tcp_garbage = await TcpClient.open(server.tcp)
    tcp_garbage.send_raw(b"\x00\x00\x00\x03\xc1\xc1\xc1")
    tcp_not_a_map = await TcpClient.open(server.tcp)
    tcp_not_a_map.send_raw(b"\x00\x00\x00\x01\x90")  # an empty msgpack array
    tcp_too_big = await TcpClient.open(server.tcp)
    tcp_too_big.send_raw((64 * 1024 + 1).to_bytes(4, "big"))  # header only
    for client in (tcp_garbage, tcp_not_a_map, tcp_too_big):
        assert await client.closed()

    ws_garbage = await WsClient.open(server.ws)
    await ws_garbage.ws.send(b"\xc1")
    ws_not_json = await WsClient.open(server.ws, binary=False)
    await ws_not_json.ws.send("{not json")
    ws_array = await WsClient.open(server.ws, binary=False)
    await ws_array.ws.send("[1, 2]")
    ws_too_big = await WsClient.open(server.ws)
    await ws_too_big.ws.send(msgpack.packb({"id": 1, "fn": "sys.echo", "args": {"pad": "x" * 64 * 1024}}))
    raw_bad_utf8 = await RawWebSocket.open(server.ws)
    raw_bad_utf8.send_text(b'{"id": 1, "fn": "\xff"}')
    for client, code in ((ws_garbage, 1007), (ws_not_json, 1007), (ws_array, 1007), (ws_too_big, 1009)):
        with pytest.raises(ConnectionClosed):
            await client.ws.recv()
        assert client.ws.close_code == code
    assert await raw_bad_utf8.close_code() == 1007

    for witness in witnesses:
        assert (await witness.call("sys.echo", {"after": True}))["data"] == {"after": True}
        await witness.close()


def test_health_and_metrics(server: Server) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http}/healthz", timeout=5) as response:
        health = json.load(response)
    assert health["status"] == "ok"
    assert set(health["roles"]) == {"gate", "auth", "worker"}
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert 'gameserver_requests_total{fn="sys.echo",outcome="ok"}' in metrics


async def test_sigterm_answers_in_flight_requests_and_exits_0(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        tcp = await TcpClient.open(server.tcp)
        ws = await WsClient.open(server.ws, binary=False)
        tcp.send({"id": 1, "fn": "testkit.sleep", "args": {"seconds": 0.5}})
        await ws.send({"id": 2, "fn": "testkit.sleep", "args": {"seconds": 0.5}})
        assert (await tcp.call("sys.echo"))["ok"] is True  # the sleeps were received before this reply
        assert (await ws.call("sys.echo"))["ok"] is True
        server.process.send_signal(signal.SIGTERM)
        assert await tcp.recv() == {"id": 1, "ok": True, "data": 0.5}
        assert await ws.recv() == {"id": 2, "ok": True, "data": 0.5}
        assert await tcp.closed()
        with pytest.raises(ConnectionClosed):
            await ws.ws.recv()
        assert ws.ws.close_code == 1001
        assert server.process.wait(timeout=GRACE + EXIT_MARGIN) == 0, server.output()
    finally:
        stop_server(server)
    assert "stopped" in server.output()


def test_sigterm_with_a_stuck_request_still_exits_0_within_the_grace(tmp_path: Path) -> None:
    grace = 0.5
    server = start_server(tmp_path, "--set", f"server.shutdown_grace={grace}")
    try:
        with socket.create_connection(("127.0.0.1", server.tcp), timeout=5) as sock:
            body = msgpack.packb({"id": 1, "fn": "testkit.sleep", "args": {"seconds": 60}})
            sock.sendall(len(body).to_bytes(4, "big") + body)
            body = msgpack.packb({"id": 2, "fn": "sys.echo"})
            sock.sendall(len(body).to_bytes(4, "big") + body)
            sock.recv(1024)  # the echo: the sleep is in flight
            server.process.send_signal(signal.SIGTERM)
            assert server.process.wait(timeout=grace + EXIT_MARGIN) == 0, server.output()
    finally:
        stop_server(server)
