"""The gate over real sockets (PROTOCOL.md, "Gate"): raw TCP, WebSocket binary (msgpack) and text (JSON)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from websockets.exceptions import ConnectionClosed

from gameserver.app import App
from tests.clients import RawWebSocket, TcpClient, WsClient
from tests.fixtures.modules import PATH as FIXTURE_MODULES
from tests.fixtures.modules.testkit.handlers import SECRET
from tests.server.support import echo_of_size, tcp_frame

INTERNAL = {"code": "internal", "message": "programming error"}


def without_cid(reply: dict[str, Any]) -> dict[str, Any]:
    """The reply less the internal error's correlation id (``<node>-<connection>-<request id>``)."""
    assert reply["error"]["cid"].endswith(f"-{reply['id']}"), reply
    return {**reply, "error": {k: v for k, v in reply["error"].items() if k != "cid"}}


async def send(client: TcpClient | WsClient, message: Any) -> None:
    if isinstance(client, TcpClient):
        client.send(message)
    else:
        await client.send(message)


async def open_client(app: App, kind: str) -> TcpClient | WsClient:
    if kind == "tcp":
        return await TcpClient.open(app.ports["gate-tcp"])
    return await WsClient.open(app.ports["ws"], binary=kind == "ws-binary")


KINDS = ["tcp", "ws-binary", "ws-text"]


@pytest.mark.parametrize("kind", KINDS)
async def test_request_reply(gate_app: App, kind: str) -> None:
    client = await open_client(gate_app, kind)
    assert await client.call("sys.echo", {"a": [1, "é", None]}) == {"id": 1, "ok": True, "data": {"a": [1, "é", None]}}
    assert await client.call("testkit.add", {"a": 2, "b": 3}) == {"id": 2, "ok": True, "data": 5}
    reply = await client.call("sys.time")
    assert reply["ok"] is True and type(reply["data"]) is int
    await client.close()


@pytest.mark.parametrize("path", ["/", "/gate"])
async def test_both_websocket_paths_are_the_gate(gate_app: App, path: str) -> None:
    client = await WsClient.open(gate_app.ports["ws"], path)
    assert (await client.call("sys.echo", {"p": path}))["data"] == {"p": path}
    await client.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_errors_over_the_wire(gate_app: App, kind: str) -> None:
    client = await open_client(gate_app, kind)
    assert await client.call("nope.nope") == {
        "id": 1,
        "ok": False,
        "error": {"code": "unknown_function", "message": "no function nope.nope"},
    }
    assert await client.call("testkit.add", {"a": True}) == {
        "id": 2,
        "ok": False,
        "error": {"code": "bad_request", "message": "a must be an integer"},
    }
    assert (await client.call("testkit.whoami"))["error"]["code"] == "unauthorized"
    assert (await client.call("testkit.whoami", token="not-a-jwt"))["error"]["code"] == "unauthorized"
    assert without_cid(await client.call("testkit.crash")) == {"id": 5, "ok": False, "error": INTERNAL}
    assert (await client.call("testkit.hang"))["error"]["code"] == "timeout"
    assert (await client.call("testkit.redis_down"))["error"]["code"] == "unavailable"
    assert (await client.call("testkit.db_down"))["error"]["code"] == "unavailable"
    assert without_cid(await client.call("testkit.unencodable")) == {"id": 9, "ok": False, "error": INTERNAL}
    await client.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_bad_envelope_keeps_the_connection(gate_app: App, kind: str) -> None:
    client = await open_client(gate_app, kind)
    for message in ({"fn": "sys.echo"}, {"id": "1", "fn": "sys.echo"}, {"id": True, "fn": "sys.echo"}):
        await send(client, message)
        assert await client.recv() == {
            "id": None,
            "ok": False,
            "error": {"code": "bad_request", "message": "id must be an integer"},
        }
    for message, text in [
        ({"id": 4}, "fn must be a string"),
        ({"id": 5, "fn": "sys.echo", "args": [1]}, "args must be a map"),
        ({"id": 6, "fn": "sys.echo", "token": 1}, "token must be a string"),
    ]:
        await send(client, message)
        assert await client.recv() == {
            "id": message["id"],
            "ok": False,
            "error": {"code": "bad_request", "message": text},
        }
    assert (await client.call("sys.echo", {"still": "open"}))["ok"] is True
    await client.close()


async def test_args_null_means_empty(gate_app: App) -> None:
    client = await TcpClient.open(gate_app.ports["gate-tcp"])
    client.send({"id": 1, "fn": "sys.echo", "args": None})
    assert await client.recv() == {"id": 1, "ok": True, "data": {}}
    await client.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_many_outstanding_requests_on_one_connection(gate_app: App, kind: str) -> None:
    client = await open_client(gate_app, kind)
    count = 200
    for i in range(count):
        # slow ones first: their replies come last, matched by id
        message = (
            {"id": i, "fn": "testkit.sleep", "args": {"seconds": 0.05}}
            if i < 5
            else {
                "id": i,
                "fn": "testkit.add",
                "args": {"a": i},
            }
        )
        await send(client, message)
    replies = [await client.recv() for _ in range(count)]
    assert sorted(r["id"] for r in replies) == list(range(count))
    assert all(r["data"] == (0.05 if r["id"] < 5 else r["id"]) for r in replies)
    await client.close()


async def test_many_frames_in_one_tcp_write(gate_app: App) -> None:
    client = await TcpClient.open(gate_app.ports["gate-tcp"])
    client.send_raw(b"".join(tcp_frame({"id": i, "fn": "testkit.add", "args": {"a": i}}) for i in range(50)))
    replies = [await client.recv() for _ in range(50)]
    assert sorted((r["id"], r["data"]) for r in replies) == [(i, i) for i in range(50)]
    await client.close()


async def test_tcp_frame_split_across_writes(gate_app: App) -> None:
    client = await TcpClient.open(gate_app.ports["gate-tcp"])
    frame = tcp_frame({"id": 1, "fn": "sys.echo", "args": {"x": 1}})
    for i in range(len(frame)):
        client.send_raw(frame[i : i + 1])
        await client.writer.drain()
    assert await client.recv() == {"id": 1, "ok": True, "data": {"x": 1}}
    await client.close()


async def test_push_uses_the_format_of_the_latest_request(gate_app: App) -> None:
    raw = await RawWebSocket.open(gate_app.ports["ws"])
    raw.send_text(json.dumps({"id": 1, "fn": "testkit.push", "args": {"event": "e.json", "data": [1]}}).encode())
    frames = [await raw.recv(), await raw.recv()]
    assert all(frame.opcode.name == "TEXT" for frame in frames)
    assert sorted(frame.data for frame in frames) == sorted(
        [b'{"event":"e.json","data":[1]}', b'{"id":1,"ok":true,"data":true}']
    )
    raw.send_binary(msgpack.packb({"id": 2, "fn": "testkit.push", "args": {"event": "e.bin"}}))
    frames = [await raw.recv(), await raw.recv()]
    assert all(frame.opcode.name == "BINARY" for frame in frames)
    decoded = [msgpack.unpackb(frame.data) for frame in frames]
    assert sorted(decoded, key=len) == [{"event": "e.bin", "data": None}, {"id": 2, "ok": True, "data": True}]
    await raw.close()


async def test_fragmented_websocket_message(gate_app: App) -> None:
    raw = await RawWebSocket.open(gate_app.ports["ws"])
    text = json.dumps({"id": 1, "fn": "sys.echo", "args": {"frag": "mented"}}).encode()
    raw.send_text(text[:5], fin=False)
    raw.send_continuation(text[5:12], fin=False)
    raw.send_continuation(text[12:], fin=True)
    assert json.loads((await raw.recv()).data) == {"id": 1, "ok": True, "data": {"frag": "mented"}}
    await raw.close()


async def test_rate_limited_keeps_the_connection(app_factory: Callable[..., Any]) -> None:
    app = await app_factory(gate={"rate": 0.1, "burst": 2})
    client = await TcpClient.open(app.ports["gate-tcp"])
    assert (await client.call("sys.echo"))["ok"] is True
    assert (await client.call("sys.echo"))["ok"] is True
    assert await client.call("sys.echo") == {
        "id": 3,
        "ok": False,
        "error": {"code": "rate_limited", "message": "over the connection's request rate"},
    }
    other = await TcpClient.open(app.ports["gate-tcp"])  # its own bucket
    assert (await other.call("sys.echo"))["ok"] is True
    await client.close()
    await other.close()


async def test_overloaded(app_factory: Callable[..., Any]) -> None:
    app = await app_factory(worker={"max_inflight": 1}, modules={"paths": [FIXTURE_MODULES]})
    client = await TcpClient.open(app.ports["gate-tcp"])
    client.send({"id": 1, "fn": "testkit.sleep", "args": {"seconds": 0.2}})
    client.send({"id": 2, "fn": "sys.echo"})
    assert await client.recv() == {
        "id": 2,
        "ok": False,
        "error": {"code": "overloaded", "message": "server overloaded, retry later"},
    }
    assert await client.recv() == {"id": 1, "ok": True, "data": 0.2}
    await client.close()


async def test_nothing_of_a_crash_reaches_the_client(gate_app: App, caplog: pytest.LogCaptureFixture) -> None:
    client = await WsClient.open(gate_app.ports["ws"], binary=False)
    await client.send({"id": 77, "fn": "testkit.crash"})
    raw = await client.ws.recv()
    assert isinstance(raw, str)
    prefix = '{"id":77,"ok":false,"error":{"code":"internal","message":"programming error","cid":"test-'
    assert raw.startswith(prefix) and raw.endswith('-77"}}'), raw  # the correlation id, nothing of the crash
    cid = json.loads(raw)["error"]["cid"]
    assert SECRET in caplog.text and f"correlation id {cid}" in caplog.text
    await client.close()


# Protocol violations: the connection closes (WebSocket 1007 / 1009), and only that one.


UNDECODABLE = [
    pytest.param(b"\xc1", id="not-msgpack"),
    pytest.param(msgpack.packb([1, 2]), id="not-a-map"),
    pytest.param(msgpack.packb({"id": 1}) + b"\x00", id="trailing-bytes"),
    pytest.param(b"\x81\xa2fn\xa2\xc3\x28", id="bad-utf8-in-str"),
    pytest.param(msgpack.packb({1: 2}), id="int-key"),
]


@pytest.mark.parametrize("payload", UNDECODABLE)
async def test_tcp_undecodable_closes_the_socket(gate_app: App, payload: bytes) -> None:
    client = await TcpClient.open(gate_app.ports["gate-tcp"])
    client.send_raw(len(payload).to_bytes(4, "big") + payload)
    assert await client.closed()


@pytest.mark.parametrize("payload", UNDECODABLE)
async def test_ws_binary_undecodable_closes_1007(gate_app: App, payload: bytes) -> None:
    raw = await RawWebSocket.open(gate_app.ports["ws"])
    raw.send_binary(payload)
    assert await raw.close_code() == 1007


@pytest.mark.parametrize(
    "text",
    [
        b"not json",
        b"[1, 2]",
        b'{"id": 1} {"id": 2}',
        b'{"id": 1, "x": NaN}',
        b"\xff\xfe",
        b'{"id":1,"fn":"\xc3\x28"}',
        b'{"id":1,"fn":"sys.echo","args":{"s":"\\ud800"}}',
    ],
    ids=["not-json", "not-an-object", "two-objects", "nan", "not-utf8", "not-utf8-in-str", "lone-surrogate"],
)
async def test_ws_text_undecodable_closes_1007(gate_app: App, text: bytes) -> None:
    raw = await RawWebSocket.open(gate_app.ports["ws"])
    raw.send_text(text)
    assert await raw.close_code() == 1007


async def test_tcp_frame_at_the_limit_is_served(gate_app: App) -> None:
    client = await TcpClient.open(gate_app.ports["gate-tcp"])
    payload = echo_of_size(64 * 1024)
    client.send_raw(len(payload).to_bytes(4, "big") + payload)
    reply = await client.recv()
    assert reply["ok"] is True and len(reply["data"]["pad"]) > 65000
    await client.close()


async def test_tcp_over_the_limit_closes_from_the_header(gate_app: App) -> None:
    client = await TcpClient.open(gate_app.ports["gate-tcp"])
    client.send_raw((64 * 1024 + 1).to_bytes(4, "big"))  # the body never comes
    assert await client.closed()


async def test_ws_message_at_the_limit_is_served(gate_app: App) -> None:
    raw = await RawWebSocket.open(gate_app.ports["ws"])
    raw.send_binary(echo_of_size(64 * 1024))
    assert msgpack.unpackb((await raw.recv()).data)["ok"] is True
    await raw.close()


async def test_ws_over_the_limit_closes_1009(gate_app: App) -> None:
    raw = await RawWebSocket.open(gate_app.ports["ws"])
    raw.send_binary(echo_of_size(64 * 1024 + 1))
    assert await raw.close_code() == 1009


async def test_ws_fragments_over_the_limit_close_1009(gate_app: App) -> None:
    raw = await RawWebSocket.open(gate_app.ports["ws"])
    payload = echo_of_size(64 * 1024 + 1)
    raw.send_binary(payload[:40000], fin=False)
    raw.send_continuation(payload[40000:], fin=True)
    assert await raw.close_code() == 1009


async def test_ws_client_library_sees_1007(gate_app: App) -> None:
    client = await WsClient.open(gate_app.ports["ws"])
    await client.ws.send(b"\xc1")
    with pytest.raises(ConnectionClosed):
        await client.ws.recv()
    assert client.ws.close_code == 1007


async def test_a_violation_leaves_other_connections_working(gate_app: App) -> None:
    tcp = await TcpClient.open(gate_app.ports["gate-tcp"])
    ws_bin = await WsClient.open(gate_app.ports["ws"])
    ws_text = await WsClient.open(gate_app.ports["ws"], binary=False)
    offenders = [await TcpClient.open(gate_app.ports["gate-tcp"]), await RawWebSocket.open(gate_app.ports["ws"])]
    for client in (tcp, ws_bin, ws_text):
        assert (await client.call("sys.echo", {"before": 1}))["ok"] is True
    tcp.send({"id": 100, "fn": "testkit.sleep", "args": {"seconds": 0.1}})  # in flight across the violations
    offenders[0].send_raw(b"\x00\x00\x00\x01\xc1")
    assert isinstance(offenders[1], RawWebSocket)
    offenders[1].send_binary(b"\xc1")
    assert await offenders[0].closed()
    assert await offenders[1].close_code() == 1007
    assert await tcp.recv() == {"id": 100, "ok": True, "data": 0.1}
    for client in (tcp, ws_bin, ws_text):
        assert (await client.call("sys.echo", {"after": 1}))["data"] == {"after": 1}
        await client.close()
    fresh = await TcpClient.open(gate_app.ports["gate-tcp"])
    assert (await fresh.call("sys.echo"))["ok"] is True
    await fresh.close()


async def test_replies_after_the_client_left_are_dropped(gate_app: App) -> None:
    client = await TcpClient.open(gate_app.ports["gate-tcp"])
    client.send({"id": 1, "fn": "testkit.sleep", "args": {"seconds": 0.05}})
    ws = await WsClient.open(gate_app.ports["ws"])
    await ws.send({"id": 1, "fn": "testkit.sleep", "args": {"seconds": 0.05}})
    await client.close()
    await ws.close()
    assert gate_app.dispatcher is not None
    async with asyncio.timeout(5):
        assert await gate_app.dispatcher.drain(5)
    other = await TcpClient.open(gate_app.ports["gate-tcp"])
    assert (await other.call("sys.echo"))["ok"] is True
    await other.close()


async def test_tcp_half_close_still_gets_its_replies(gate_app: App) -> None:
    # A client that sends its requests and shuts its side (`nc` at end of input) is answered, then closed.
    client = await TcpClient.open(gate_app.ports["gate-tcp"])
    client.send({"id": 1, "fn": "testkit.sleep", "args": {"seconds": 0.1}})
    client.send({"id": 2, "fn": "sys.echo", "args": {"x": 1}})
    client.writer.write_eof()
    replies = {(await client.recv())["id"] for _ in range(2)}
    assert replies == {1, 2}
    assert await client.closed()
    await client.close()


async def test_tcp_half_close_with_nothing_pending_closes(gate_app: App) -> None:
    client = await TcpClient.open(gate_app.ports["gate-tcp"])
    assert (await client.call("sys.echo", {}))["ok"]
    client.writer.write_eof()
    assert await client.closed()
    await client.close()


@pytest.mark.parametrize("kind", ["tcp", "ws-binary"])
async def test_a_login_finishing_after_the_client_left_binds_nothing(gate_app: App, kind: str) -> None:
    client = await open_client(gate_app, kind)
    await send(client, {"id": 1, "fn": "testkit.bind_after", "args": {"seconds": 0.1, "player": 42}})
    await client.close()
    dispatcher = gate_app.dispatcher
    assert dispatcher is not None
    assert await dispatcher.drain(5.0)
    assert list(gate_app.resources.sessions.of(42)) == []
