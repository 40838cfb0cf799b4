"""The chat edge in one process (PROTOCOL.md, "Chat edge: line protocol"): TCP 8890 and WebSocket /chat.

Every wait is a line (or a close) with a timeout; "does not receive" is checked by a PING whose PONG must be
the next line, sent after another member of the same channel got the message (in one process the fan-out
writes every member's copy in the same step).
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gameserver.app import App
from gameserver.features.chatedge import Chat
from gameserver.features.identity.nonces import issue_nonce
from gameserver.metrics import CHAT
from tests.clients import ChatClient

KINDS = ("tcp", "ws")
_uids = itertools.count(1000)

Login = Callable[..., Awaitable[ChatClient]]


async def make_nonce(app: App, uid: int, *, name: str = "", world: Any = 1, family: Any = None, ttl: float = 30) -> str:
    identity = {"uid": uid, "name": name or f"p{uid}", "world": world, "family": family}
    return await issue_nonce(app.resources.redis, app.resources.keys, identity, ttl)


async def connect(app: App, kind: str) -> ChatClient:
    if kind == "ws":
        return await ChatClient.websocket(app.ports["ws"])
    return await ChatClient.tcp(app.ports["chat-tcp"])


@pytest.fixture
async def login(app_factory: Callable[..., Awaitable[App]]) -> Login:
    """``await login(app, kind, world=..., family=...)``: a logged-in client with a fresh uid."""

    async def factory(app: App, kind: str = "tcp", *, uid: int | None = None, **identity: Any) -> ChatClient:
        uid = next(_uids) if uid is None else uid
        client = await connect(app, kind)
        client.uid = uid  # type: ignore[attr-defined]
        ok = await client.login(await make_nonce(app, uid, **identity))
        assert ok["uid"] == uid
        return client

    return factory


async def assert_nothing_before_pong(client: ChatClient) -> None:
    await client.send("PING")
    assert await client.recv() == ("PONG", "")


@pytest.mark.parametrize(("first", "second"), list(itertools.product(KINDS, KINDS)))
async def test_public_reaches_everyone_in_the_world(app: App, login: Login, first: str, second: str) -> None:
    a = await login(app, first, name="Alice")
    b = await login(app, second, name="Bob")
    await a.send("PUBLIC", "hello, 世界")
    for client in (a, b):  # the sender gets its own
        command, message = await client.recv_message()
        assert command == "PUBLIC"
        assert message["uid"] == a.uid  # type: ignore[attr-defined]
        assert message["name"] == "Alice"
        assert message["text"] == "hello, 世界"
        assert isinstance(message["ts"], int) and message["ts"] > 1_600_000_000_000
        assert set(message) == {"id", "uid", "name", "text", "ts"}  # "id": the chat history extension
        assert isinstance(message["id"], str)
    await b.send("PUBLIC", "hi Alice")
    assert (await a.recv_message())[1]["text"] == "hi Alice"
    assert (await b.recv_message())[1]["name"] == "Bob"


@pytest.mark.parametrize("kind", KINDS)
async def test_ok_answers_the_identity(app: App, kind: str) -> None:
    client = await connect(app, kind)
    identity = await client.login(await make_nonce(app, 77, name="Eve", world=3, family=12))
    assert identity == {"uid": 77, "name": "Eve", "world": 3, "family": 12}
    await assert_nothing_before_pong(client)


@pytest.mark.parametrize("kind", KINDS)
async def test_text_is_kept_as_sent(app: App, login: Login, kind: str) -> None:
    client = await login(app, kind)
    text = '  <b>"quoted"</b> \\n not a newline \t tab \u2028 \U0001f600 trailing  '
    await client.send("PUBLIC", text)
    assert (await client.recv_message())[1]["text"] == text
    await client.send("PUBLIC", "")
    assert (await client.recv_message())[1]["text"] == ""


async def test_worlds_and_families_are_isolated(app: App, login: Login) -> None:
    red1 = await login(app, "tcp", world=1, family=10)
    red2 = await login(app, "ws", world=1, family=10)
    blue = await login(app, "tcp", world=1, family=11)
    loner = await login(app, "ws", world=1)
    red_elsewhere = await login(app, "tcp", world=2, family=10)  # same family id, other world
    await red1.send("FAMILY", "red only")
    for client in (red1, red2):
        command, message = await client.recv_message()
        assert (command, message["text"]) == ("FAMILY", "red only")
    for client in (blue, loner, red_elsewhere):
        await assert_nothing_before_pong(client)
    await blue.send("PUBLIC", "world 1")
    for client in (red1, red2, blue, loner):
        assert (await client.recv_message())[1]["text"] == "world 1"
    await assert_nothing_before_pong(red_elsewhere)
    await red_elsewhere.send("FAMILY", "world 2 reds")
    assert (await red_elsewhere.recv_message())[1]["text"] == "world 2 reds"
    for client in (red1, red2):
        await assert_nothing_before_pong(client)


@pytest.mark.parametrize("kind", KINDS)
async def test_family_without_one_is_an_error(app: App, login: Login, kind: str) -> None:
    client = await login(app, kind)
    await client.send("FAMILY", "anyone?")
    assert await client.recv() == ("ERROR", "not_in_family")
    await assert_nothing_before_pong(client)  # a request error, not a violation


# Every violation of PROTOCOL.md, "Chat edge": (name, what to send, whether to log in first, WS close code).
TCP_VIOLATIONS = [
    ("first line not LOGIN", b"PUBLIC    hi\r\n", False),
    ("first line not a line", b"hello\r\n", False),
    ("unknown nonce", b"LOGIN     no-such-nonce\r\n", False),
    ("empty nonce", b"LOGIN     \r\n", False),
    ("second LOGIN", b"LOGIN     again\r\n", True),
    ("unknown command", b"SHOUT     hi\r\n", True),
    ("lower-case command", b"public    hi\r\n", True),
    ("short line", b"PING\r\n", True),
    ("over the limit", b"PUBLIC    " + b"x" * 4085 + b"\r\n", True),
    ("over the limit, no CRLF yet", b"PUBLIC    " + b"x" * 5000, True),
    ("not UTF-8", b"PUBLIC    \xff\xfe\r\n", True),
    ("bare LF", b"PUBLIC    hi\n", True),
    ("lone CR", b"PUBLIC    a\rb\r\n", True),
    ("not UTF-8 before LOGIN", b"LOGIN     \xc3\x28\r\n", False),
]
WS_VIOLATIONS: list[tuple[str, bytes | str, bool, int]] = [
    ("first line not LOGIN", "PUBLIC    hi", False, 1002),
    ("unknown nonce", "LOGIN     no-such-nonce", False, 1008),
    ("second LOGIN", "LOGIN     again", True, 1002),
    ("unknown command", "SHOUT     hi", True, 1002),
    ("short line", "PING", True, 1002),
    ("over the limit", "PUBLIC    " + "x" * 4087, True, 1009),
    ("CRLF in the frame", "PUBLIC    hi\r\n", True, 1007),
    ("LF in the frame", "PUBLIC    a\nb", True, 1007),
    ("CR in the frame", "PUBLIC    a\rb", True, 1007),
    ("binary frame", b"PUBLIC    hi", True, 1003),
    ("binary frame before LOGIN", b"LOGIN     nonce", False, 1003),
]


async def bystanders_unaffected(app: App, login: Login, bystander: ChatClient) -> None:
    await assert_nothing_before_pong(bystander)
    other = await login(app, "tcp")
    await other.send("PUBLIC", "still here")
    assert (await bystander.recv_message())[1]["text"] == "still here"


@pytest.mark.parametrize(("name", "data", "logged_in"), TCP_VIOLATIONS, ids=[v[0] for v in TCP_VIOLATIONS])
async def test_tcp_violation_closes_that_connection_only(
    app: App, login: Login, name: str, data: bytes, logged_in: bool
) -> None:
    bystander = await login(app, "ws")
    client = await login(app, "tcp") if logged_in else await connect(app, "tcp")
    before = CHAT.disconnects.get("violation", 0)
    await client.send_raw(data)
    assert await client.closed()
    assert CHAT.disconnects.get("violation", 0) == before + 1
    await bystanders_unaffected(app, login, bystander)


@pytest.mark.parametrize(("name", "data", "logged_in", "code"), WS_VIOLATIONS, ids=[v[0] for v in WS_VIOLATIONS])
async def test_ws_violation_closes_that_connection_only(
    app: App, login: Login, name: str, data: bytes | str, logged_in: bool, code: int
) -> None:
    bystander = await login(app, "tcp")
    client = await login(app, "ws") if logged_in else await connect(app, "ws")
    await client.send_raw(data)
    assert await client.closed()
    assert client.ws is not None and client.ws.close_code == code
    await bystanders_unaffected(app, login, bystander)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_replayed_nonce_is_refused(app: App, login: Login, kind: str) -> None:
    nonce = await make_nonce(app, 42)
    first = await connect(app, kind)
    assert (await first.login(nonce))["uid"] == 42
    replay = await connect(app, kind)
    await replay.send("LOGIN", nonce)
    assert await replay.closed()
    await assert_nothing_before_pong(first)


async def test_a_nonce_redeemed_concurrently_logs_in_once(app: App) -> None:
    nonce = await make_nonce(app, 43)
    clients = [await connect(app, kind) for kind in ("tcp", "ws", "tcp", "ws")]
    await asyncio.gather(*(client.send("LOGIN", nonce) for client in clients))

    async def outcome(client: ChatClient) -> str:
        try:
            command, _ = await client.recv()
        except Exception:
            return "closed"
        return command

    assert sorted(await asyncio.gather(*(outcome(client) for client in clients))) == ["OK"] + ["closed"] * 3


@pytest.mark.parametrize("kind", KINDS)
async def test_an_expired_nonce_is_refused(app: App, kind: str) -> None:
    nonce = await make_nonce(app, 44, ttl=0.05)
    key = app.resources.keys.nonce(nonce)
    async with asyncio.timeout(5):
        while await app.resources.redis.exists(key):
            await asyncio.sleep(0.01)
    client = await connect(app, kind)
    await client.send("LOGIN", nonce)
    assert await client.closed()


@pytest.mark.parametrize("kind", KINDS)
async def test_login_must_come_within_the_login_timeout(app_factory: Callable[..., Awaitable[App]], kind: str) -> None:
    app = await app_factory(chat={"tcp_port": 0, "login_timeout": 0.2})
    silent = await connect(app, kind)
    logged_in = await connect(app, kind)
    await logged_in.login(await make_nonce(app, 45))
    assert await silent.closed()
    await assert_nothing_before_pong(logged_in)  # LOGIN made it ready: the timeout no longer applies


async def test_idle_connections_are_closed(app_factory: Callable[..., Awaitable[App]]) -> None:
    app = await app_factory(chat={"tcp_port": 0, "idle_timeout": 0.3})
    client = await connect(app, "tcp")
    await client.login(await make_nonce(app, 46))
    assert await client.closed()


@pytest.mark.parametrize("kind", KINDS)
async def test_rate_limit_then_disconnect_on_sustained_abuse(
    app_factory: Callable[..., Awaitable[App]], login: Login, kind: str
) -> None:
    app = await app_factory(chat={"tcp_port": 0, "rate": 0.01, "burst": 2, "abuse_limit": 3, "abuse_window": 1000.0})
    client = await login(app, kind)
    before = CHAT.rate_limited
    for text in ("one", "two"):
        await client.send("PUBLIC", text)
        assert (await client.recv_message())[1]["text"] == text
    for _ in range(3):
        await client.send("PUBLIC", "too fast")
        assert await client.recv() == ("ERROR", "rate_limited")
    assert CHAT.rate_limited == before + 3
    await assert_nothing_before_pong(client)  # PING is not rate limited
    await client.send("PUBLIC", "still too fast")
    assert await client.recv() == ("ERROR", "rate_limited")
    assert await client.closed()


@pytest.mark.parametrize("kind", KINDS)
async def test_set_family_moves_a_connected_player(app: App, login: Login, kind: str) -> None:
    chat: Chat = app.resources.extra["chat"]
    player = await login(app, kind)
    uid = player.uid  # type: ignore[attr-defined]
    seven = await login(app, "tcp", family=7)
    eight = await login(app, "ws", family=8)
    await chat.set_family(uid, 1, 7)
    await player.send("FAMILY", "joined seven")
    for client in (player, seven):
        assert (await client.recv_message())[1]["text"] == "joined seven"
    await assert_nothing_before_pong(eight)
    await chat.set_family(uid, 1, 8)
    await seven.send("FAMILY", "seven only")
    assert (await seven.recv_message())[1]["text"] == "seven only"
    await assert_nothing_before_pong(player)
    await eight.send("FAMILY", "eight")
    assert (await player.recv_message())[1]["text"] == "eight"
    await chat.set_family(uid, 1, None)
    await player.send("FAMILY", "anyone?")
    assert await player.recv() == ("ERROR", "not_in_family")
    await chat.set_family(uid, 2, 7)  # another world: not this connection's
    await player.send("FAMILY", "anyone?")
    assert await player.recv() == ("ERROR", "not_in_family")


async def test_system_messages_reach_a_world(app: App, login: Login) -> None:
    chat: Chat = app.resources.extra["chat"]
    tcp, ws = await login(app, "tcp", family=5), await login(app, "ws", family=5)
    other_world = await login(app, "tcp", world=9)
    await chat.system(1, "server restarts in 5 minutes")
    for client in (tcp, ws):
        command, message = await client.recv_message()
        assert command == "PUBLIC"
        assert message["uid"] == 0 and message["name"] == "system"
        assert message["text"] == "server restarts in 5 minutes"
    await assert_nothing_before_pong(other_world)
    await chat.system(1, "family news", family=5)
    for client in (tcp, ws):
        command, message = await client.recv_message()
        assert (command, message["uid"], message["text"]) == ("FAMILY", 0, "family news")


async def test_deliveries_are_counted(app: App, login: Login) -> None:
    clients = [await login(app, kind) for kind in ("tcp", "ws", "tcp")]
    before = CHAT.deliveries, CHAT.messages
    await clients[0].send("PUBLIC", "count me")
    for client in clients:
        await client.recv_message()
    assert (CHAT.deliveries - before[0], CHAT.messages - before[1]) == (3, 1)
    assert CHAT.connections["tcp"] >= 2 and CHAT.connections["ws"] >= 1


async def test_max_connections_counts_both_transports(app_factory: Callable[..., Awaitable[App]]) -> None:
    app = await app_factory(chat={"tcp_port": 0, "max_connections": 2})
    tcp = await connect(app, "tcp")
    ws = await connect(app, "ws")
    await tcp.login(await make_nonce(app, 47))
    await ws.login(await make_nonce(app, 48))
    for kind in KINDS:
        refused = await connect(app, kind)
        assert await refused.closed()
    await assert_nothing_before_pong(tcp)
    await assert_nothing_before_pong(ws)


async def test_a_slow_reader_does_not_delay_the_others(
    app_factory: Callable[..., Awaitable[App]], login: Login
) -> None:
    app = await app_factory(
        chat={"tcp_port": 0, "send_queue": 4096, "send_timeout": 0.2, "rate": 1e6, "burst": 10**6, "flush_interval": 0}
    )
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", app.ports["chat-tcp"]))
    stream_reader, stream_writer = await asyncio.open_connection(sock=sock)
    slow = ChatClient(stream_reader, stream_writer)
    await slow.login(await make_nonce(app, 49))
    reader = await login(app, "ws")
    sender = await login(app, "tcp")
    before = CHAT.disconnects.get("slow", 0)
    text = "z" * 3000
    for n in itertools.count():
        await sender.send("PUBLIC", f"{n} {text}")
        for client in (sender, reader):
            assert (await client.recv_message())[1]["text"].startswith(f"{n} ")
        if CHAT.disconnects.get("slow", 0) > before:
            break
        assert n < 100_000, "the slow reader was never disconnected"
    assert CHAT.dropped > 0
    assert await slow.closed()
    await assert_nothing_before_pong(reader)


async def test_chat_resource_without_the_chat_role(app_factory: Callable[..., Awaitable[App]]) -> None:
    app = await app_factory(server={"roles": ["worker"]})
    assert isinstance(app.resources.extra["chat"], Chat)
    assert "chat-tcp" not in app.ports
    await app.resources.extra["chat"].system(1, "nobody listens here")


@pytest.mark.parametrize("interval", [0.0, 0.2])
@pytest.mark.parametrize("kind", KINDS)
async def test_flush_interval_keeps_every_message_in_order(
    app_factory: Callable[..., Awaitable[App]], login: Login, kind: str, interval: float
) -> None:
    app = await app_factory(chat={"tcp_port": 0, "flush_interval": interval, "rate": 1e6, "burst": 10**6})
    sender, receiver = await login(app, "tcp"), await login(app, kind)
    before = CHAT.deliveries
    for n in range(20):
        await sender.send("PUBLIC", str(n))
    for client in (sender, receiver):
        assert [(await client.recv_message())[1]["text"] for _ in range(20)] == [str(n) for n in range(20)]
    assert CHAT.deliveries - before == 40


@pytest.mark.parametrize("kind", KINDS)
async def test_login_while_redis_is_down_answers_unavailable(
    app_factory: Callable[..., Awaitable[App]], kind: str
) -> None:
    app = await app_factory(redis={"url": "redis://127.0.0.1:1/0", "connect_timeout": 0.2}, server={"bus": "local"})
    client = await connect(app, kind)
    await client.send("LOGIN", "some-nonce")
    assert await client.recv() == ("ERROR", "unavailable")
    assert await client.closed()


async def test_shutdown_closes_chat_connections(config_factory: Callable[..., Any]) -> None:
    app = App(config_factory())
    await app.start()
    try:
        tcp = await connect(app, "tcp")
        await tcp.login(await make_nonce(app, 50))
        ws = await connect(app, "ws")
        await ws.login(await make_nonce(app, 51))
    finally:
        await app.stop()
    assert await tcp.closed()
    assert await ws.closed()
    assert ws.ws is not None and ws.ws.close_code == 1001
