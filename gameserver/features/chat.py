"""The chat edge (PROTOCOL.md, "Chat edge: line protocol"): raw TCP on ``chat.tcp_port`` (8890) and the
WebSocket path ``/chat``, with the same behaviour on both.

A client's first line is ``LOGIN <nonce>``; the nonce is redeemed once (GETDEL) for the identity that
``auth.nonce`` stored, and the server answers ``OK`` + that identity. Then ``PUBLIC`` goes to everyone in the
sender's world (channel ``chat.<world>.public``), ``FAMILY`` to the sender's family
(``chat.<world>.family.<family>``), ``PING`` is answered ``PONG``. Anything else closes the connection.

Fan-out (docs/chat.md): each process keeps one :class:`Channel` per channel it has members for, subscribed
on the fan-out bus (``server.bus``: :class:`~gameserver.bus.local.LocalBus` in one process; between processes,
the :class:`~gameserver.bus.fanout.RedisFanout` of the process's :class:`~gameserver.bus.redispubsub.RedisBus`). A
message is encoded once where it is published; each process adds the CRLF once and builds the WebSocket
frame once, then writes the same bytes to every member's transport. A member whose transport holds more than
``chat.send_queue`` bytes gets nothing until it drains, and is disconnected if it stays over the bound for
``chat.send_timeout`` seconds: a slow reader never slows anyone else.

Handlers reach the chat through the injected ``chat`` resource (:class:`Chat`): ``await chat.system(world,
text)``, ``await chat.set_family(uid, world, family)``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from redis.asyncio import Redis
from websockets.frames import Frame, Opcode

from enums.errors import ErrorCode, ModuleErrorCode
from gameserver.bus.fanout import RedisFanout
from gameserver.bus.local import Receiver
from gameserver.bus.redispubsub import RedisBus
from gameserver.config import ChatConfig
from gameserver.drivers.listener import Connection, Listener
from gameserver.drivers.upgrade import Route, WebSocketConnection
from gameserver.errors import CloseCode, ProtocolViolation
from gameserver.features.identity.nonces import redeem_nonce
from gameserver.features.identity.revocations import Revocations
from gameserver.keys import Keys
from gameserver.metrics import CHAT
from gameserver.protocol.lines import CRLF, Command, Line, LineDecoder, encode_body, encode_line, parse_frame
from gameserver.ratelimit import TokenBucket

if TYPE_CHECKING:
    from gameserver.app import App
    from gameserver.protocol.websocket import WebSocketCodec

log = logging.getLogger("gameserver.features.chat")

CHAT_PATH = "/chat"
SYSTEM_UID = 0
MAX_EARLY_LINES = 32  # lines a client may send before its LOGIN is answered; more is a flood
SUBSCRIBE_TIMEOUT = 5.0  # seconds to wait for Redis to confirm a login's subscriptions

_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class PubSub(Protocol):
    """What the chat needs of a bus: :class:`~gameserver.bus.local.LocalBus` or :class:`RedisFanout`."""

    def publish(self, channel: str, payload: bytes) -> None: ...

    def subscribe(self, channel: str, receiver: Receiver) -> None: ...

    def unsubscribe(self, channel: str, receiver: Receiver) -> None: ...


def _count_publish_failed(count: int) -> None:
    CHAT.publish_failed += count


def ws_text_frame(body: bytes) -> bytes:
    """An unmasked text frame (RFC 6455, 5.2): the same bytes for every WebSocket recipient."""
    return Frame(Opcode.TEXT, body).serialize(mask=False)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Channel:
    """The members of one channel in this process; the bus calls it with each message's body."""

    __slots__ = ("name", "chat", "tcp", "ws", "pending", "last_write", "timer", "_tcp", "_ws")

    def __init__(self, name: str, chat: Chat) -> None:
        self.name = name
        self.chat = chat
        self.tcp: dict[Connection, asyncio.Transport] = {}
        self.ws: dict[WebSocketConnection, tuple[asyncio.Transport, WebSocketCodec]] = {}
        self._tcp: tuple[tuple[Connection, asyncio.Transport], ...] | None = None  # snapshots, rebuilt on change
        self._ws: tuple[tuple[WebSocketConnection, tuple[asyncio.Transport, WebSocketCodec]], ...] | None = None
        self.pending: list[bytes] = []  # bodies waiting for the flush (chat.flush_interval > 0)
        self.last_write = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def __bool__(self) -> bool:
        return bool(self.tcp or self.ws)

    def add(self, client: ChatClient) -> None:
        conn, transport = client.conn, client.conn.transport
        assert transport is not None
        if isinstance(conn, WebSocketConnection):
            assert conn.codec is not None
            self.ws[conn] = (transport, conn.codec)
            self._ws = None
        else:
            self.tcp[conn] = transport
            self._tcp = None

    def discard(self, client: ChatClient) -> None:
        conn = client.conn
        if isinstance(conn, WebSocketConnection):
            if self.ws.pop(conn, None) is not None:
                self._ws = None
        elif self.tcp.pop(conn, None) is not None:
            self._tcp = None

    def __call__(self, channel: str, body: bytes) -> None:
        interval = self.chat.flush_interval
        if interval:
            # At most one write per member every `interval` seconds: a message after a quiet spell goes out
            # at once, the ones that follow it closely wait (at most `interval`) and go out together.
            if self.pending:
                self.pending.append(body)
                return
            loop = self.chat.loop
            now = loop.time()
            wait = self.last_write + interval - now
            if wait > 0:
                self.pending.append(body)
                self.timer = loop.call_later(wait, self.flush)
                return
            self.last_write = now
        self.write(body + CRLF if self.tcp else b"", ws_text_frame(body) if self.ws else b"", 1)

    def flush(self) -> None:
        """Write the gathered messages, in order: one write per member for all of them."""
        self.timer = None
        self.last_write = self.chat.loop.time()
        bodies, self.pending = self.pending, []
        if bodies:
            tcp = CRLF.join(bodies) + CRLF if self.tcp else b""
            ws = b"".join([ws_text_frame(body) for body in bodies]) if self.ws else b""
            self.write(tcp, ws, len(bodies))

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.pending = []

    def write(self, line: bytes, frame: bytes, count: int) -> None:
        """The fan-out: the same bytes to every member (``line`` for TCP, ``frame`` for WebSocket), ``count``
        messages in them; a member over ``chat.send_queue`` gets nothing (:meth:`Chat.over_bound`)."""
        delivered = 0
        if self.tcp:
            members = self._tcp
            if members is None:
                members = self._tcp = tuple(self.tcp.items())
            for conn, transport in members:
                if conn.paused_since is None:
                    try:
                        transport.write(line)
                        delivered += count
                    except Exception:  # closed under us; connection_lost removes it
                        pass
                else:
                    self.chat.over_bound(conn, count)
        if self.ws:
            wmembers = self._ws
            if wmembers is None:
                wmembers = self._ws = tuple(self.ws.items())
            for wconn, (transport, codec) in wmembers:
                if wconn.paused_since is None:
                    if not codec.close_sent:  # no data frame after a close frame (RFC 6455, 5.5.1)
                        try:
                            transport.write(frame)
                            delivered += count
                        except Exception:
                            pass
                else:
                    self.chat.over_bound(wconn, count)
        CHAT.deliveries += delivered


class _Limits:
    """A user's token buckets in this process, shared by their connections."""

    __slots__ = ("rate", "abuse", "refs")

    def __init__(self, config: ChatConfig, now: float) -> None:
        self.rate = TokenBucket(config.rate, config.burst, now)
        self.abuse = TokenBucket(config.abuse_limit / config.abuse_window, config.abuse_limit, now)
        self.refs = 0


class Chat:
    """The chat of this process: its channels and clients, and the ``chat`` resource handlers get.

    Args:
        config: the ``[chat]`` section.
        keys: channel names (with the Redis prefix).
        redis: where nonces are redeemed.
        bus: the fan-out; a :class:`RedisFanout` makes this process one of several edges.
        node: this process's id; control messages it sent itself are not applied twice.
        revocations: the players' revoked sessions: a nonce issued before its player's revocation is refused, and
            a revocation closes the player's chat connections here.
    """

    def __init__(
        self,
        config: ChatConfig,
        keys: Keys,
        redis: Redis,
        bus: PubSub,
        node: str,
        revocations: Revocations | None = None,
    ) -> None:
        self.config = config
        self.revocations = revocations
        if revocations is not None:
            revocations.on_revoke(self.revoked)
        self.keys = keys
        self.redis = redis
        self.bus = bus
        self.node = node
        self.remote = bus if isinstance(bus, RedisFanout) else None
        if self.remote is not None:
            self.remote.count_losses(keys.chat_channels(), _count_publish_failed)
        self.loop = asyncio.get_running_loop()
        self.channels: dict[str, Channel] = {}
        self.users: dict[int, set[ChatClient]] = {}  # logged in here, by uid
        self.clients: set[ChatClient] = set()  # every connection, logged in or not
        self.limits: dict[int, _Limits] = {}
        self.system_name = config.system_name
        self._moves = asyncio.Lock()
        self.flush_interval = config.flush_interval
        self._tasks: set[asyncio.Task[None]] = set()

    # The resource handlers use --------------------------------------------------------------------------

    async def system(self, world: object, text: str, *, family: object = None) -> None:
        """Post ``text`` as the system (uid 0, ``chat.system_name``) to ``world``'s public channel, or to one
        of its families when ``family`` is given; delivered on every edge process when on Redis."""
        if family is None:
            self.post(self.keys.chat_public(world), Command.PUBLIC, SYSTEM_UID, self.system_name, text)
        else:
            self.post(self.keys.chat_family(world, family), Command.FAMILY, SYSTEM_UID, self.system_name, text)

    async def set_family(self, uid: int, world: object, family: object) -> None:
        """Move ``uid``'s chat connections in ``world`` to ``family``'s channel (None: out of any family),
        without reconnecting. Returns once the move is done in this process; other edge processes get a
        control message and move their connections the same way."""
        await self._move(uid, world, family)
        if self.remote is not None:
            control = {"op": "family", "world": world, "family": family, "node": self.node}
            self.bus.publish(self.keys.chat_user(uid), _json.encode(control).encode())

    def revoked(self, uid: int) -> None:
        """``uid`` was revoked (logout, ban): close its chat connections here, after ``ERROR unauthorized``."""
        for client in tuple(self.users.get(uid, ())):
            client.reply(Command.ERROR, ErrorCode.UNAUTHORIZED.encode())
            client.disconnect("revoked", "session revoked", graceful=True)

    def online(self, uid: int) -> bool:
        """Whether ``uid`` has a chat connection logged in to this process."""
        return uid in self.users

    # Publishing -----------------------------------------------------------------------------------------

    def post(self, channel: str, command: Command, uid: int, name: str, text: str) -> None:
        """Encode one message once and hand it to the bus."""
        payload = _json.encode({"uid": uid, "name": name, "text": text, "ts": now_ms()}).encode()
        CHAT.messages += 1
        self.bus.publish(channel, encode_body(command, payload))

    def close(self) -> None:
        """Shutdown: drop what is still gathered for a flush."""
        for channel in self.channels.values():
            channel.cancel()

    # Membership -----------------------------------------------------------------------------------------

    def admit(self, client: ChatClient) -> bool:
        if len(self.clients) >= self.config.max_connections:
            return False
        self.clients.add(client)
        return True

    def join(self, client: ChatClient, name: str) -> None:
        channel = self.channels.get(name)
        if channel is None:
            channel = self.channels[name] = Channel(name, self)
            self.bus.subscribe(name, channel)
        channel.add(client)

    def leave(self, client: ChatClient, name: str) -> None:
        channel = self.channels.get(name)
        if channel is None:
            return
        channel.discard(client)
        if not channel:
            del self.channels[name]
            channel.cancel()
            self.bus.unsubscribe(name, channel)

    async def logged_in(self, client: ChatClient) -> bool:
        """Put a client that just logged in into its channels; False if Redis did not confirm them in time."""
        uid = client.uid
        names = [name for name in (client.public, client.family_channel) if name is not None]
        for name in names:
            self.join(client, name)
        group = self.users.get(uid)
        if group is None:
            group = self.users[uid] = set()
            if self.remote is not None:
                names.append(self.keys.chat_user(uid))
                self.bus.subscribe(self.keys.chat_user(uid), self._control)
        group.add(client)
        limits = self.limits.get(uid)
        if limits is None:
            limits = self.limits[uid] = _Limits(self.config, self.loop.time())
        limits.refs += 1
        client.limits = limits
        CHAT.connections[client.kind] += 1
        if self.remote is not None:
            return await self.remote.subscribed(names, SUBSCRIBE_TIMEOUT)
        return True

    def gone(self, client: ChatClient) -> None:
        """A client's connection is closing: out of every channel and count."""
        self.clients.discard(client)
        if client.limits is None:  # never logged in
            return
        for name in (client.public, client.family_channel, client.joining):
            if name is not None:
                self.leave(client, name)
        uid = client.uid
        group = self.users.get(uid)
        if group is not None:
            group.discard(client)
            if not group:
                del self.users[uid]
                if self.remote is not None:
                    self.bus.unsubscribe(self.keys.chat_user(uid), self._control)
        client.limits.refs -= 1
        if not client.limits.refs:
            self.limits.pop(uid, None)
        client.limits = None
        CHAT.connections[client.kind] -= 1

    def over_bound(self, conn: Connection, count: int) -> None:
        """A member's transport holds more than ``chat.send_queue`` bytes: drop these ``count`` messages for
        it, and disconnect it once it has been over the bound for ``chat.send_timeout`` seconds."""
        CHAT.dropped += count
        paused_since = conn.paused_since
        if paused_since is not None and self.loop.time() - paused_since >= self.config.send_timeout:
            client = conn.endpoint if isinstance(conn, WebSocketConnection) else conn
            if isinstance(client, ChatClient) and client.state is not Phase.CLOSED:
                client.disconnect(
                    "slow", f"over {self.config.send_queue} bytes unread for {self.config.send_timeout:g}s"
                )

    async def _move(self, uid: int, world: object, family: object) -> None:
        """Switch the family of ``uid``'s connections here: receive from the new channel first, and send to it
        only once the fan-out confirmed the subscription, so a member always hears its own messages."""
        async with self._moves:  # one move at a time, in the order asked
            movers = [
                client
                for client in tuple(self.users.get(uid, ()))
                if str(client.world) == str(world) and client.family != family
            ]
            if not movers:
                return
            target = None if family is None else self.keys.chat_family(world, family)
            if target is not None:
                for client in movers:
                    client.joining = target
                    self.join(client, target)
                if self.remote is not None:
                    await self.remote.subscribed([target], SUBSCRIBE_TIMEOUT)
            for client in movers:
                if client.is_closed:
                    continue
                if client.family_channel is not None:
                    self.leave(client, client.family_channel)
                client.family, client.family_channel, client.joining = family, target, None

    def _control(self, channel: str, payload: bytes) -> None:
        try:
            control = json.loads(payload)
            if control.get("node") == self.node:
                return  # applied when sent
            if control.get("op") == "family":
                uid = int(channel.rpartition(".")[2])
                task = asyncio.create_task(self._move(uid, control["world"], control["family"]), name="chat-move")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("chat: bad control message on %s: %r", channel, payload[:200])


class Phase(Enum):
    NEW = "new"
    LOGGING_IN = "logging_in"
    LOGGED_IN = "logged_in"
    CLOSED = "closed"


class ChatClient:
    """One chat connection's session, whatever its transport: login, commands, rate, channels.

    Subclasses write server lines (:meth:`reply`) and close (:meth:`disconnect`) their own way; ``conn`` is
    the :class:`Connection` whose transport the fan-out writes to.
    """

    kind = "tcp"
    conn: Connection

    def __init__(self, chat: Chat) -> None:
        self.chat = chat
        self.state = Phase.NEW
        self.uid = 0
        self.name = ""
        self.world: object = None
        self.family: object = None
        self.public: str | None = None
        self.family_channel: str | None = None
        self.joining: str | None = None  # a family channel being moved to (Chat._move)
        self.limits: _Limits | None = None
        self._early: list[Line] = []
        self._login: asyncio.Task[None] | None = None

    # The line protocol ----------------------------------------------------------------------------------

    def handle(self, line: Line) -> None:
        """Act on one client line. Raises :class:`ProtocolViolation` for a line that breaks the contract."""
        state = self.state
        if state is Phase.LOGGED_IN:
            command = line.command
            if command is Command.PUBLIC:
                self._post(self.public, Command.PUBLIC, line.payload)
            elif command is Command.FAMILY:
                if self.family_channel is None:
                    self.reply(Command.ERROR, ModuleErrorCode.NOT_IN_FAMILY.encode())
                else:
                    self._post(self.family_channel, Command.FAMILY, line.payload)
            elif command is Command.PING:
                self.reply(Command.PONG)
            else:
                raise ProtocolViolation(CloseCode.PROTOCOL_ERROR, "second LOGIN")
        elif state is Phase.NEW:
            if line.command is not Command.LOGIN:
                raise ProtocolViolation(CloseCode.PROTOCOL_ERROR, f"expected LOGIN first, got {line.command.value}")
            self.state = Phase.LOGGING_IN
            self._pause_reading()
            self._login = asyncio.create_task(self._log_in(line.payload), name="chat-login")
        elif state is Phase.LOGGING_IN:
            if line.command is Command.LOGIN:
                raise ProtocolViolation(CloseCode.PROTOCOL_ERROR, "second LOGIN")
            self._early.append(line)
            if len(self._early) > MAX_EARLY_LINES:
                raise ProtocolViolation(CloseCode.POLICY_VIOLATION, "too many lines before LOGIN was answered")

    def _post(self, channel: str | None, command: Command, text: str) -> None:
        assert channel is not None and self.limits is not None
        now = self.chat.loop.time()
        if self.limits.rate.take(now):
            self.chat.post(channel, command, self.uid, self.name, text)
            return
        CHAT.rate_limited += 1
        self.reply(Command.ERROR, ErrorCode.RATE_LIMITED.encode())
        if not self.limits.abuse.take(now):
            self.disconnect("abuse", "over the chat rate for too long", graceful=True)

    async def _log_in(self, nonce: str) -> None:
        chat = self.chat
        try:
            identity = await redeem_nonce(chat.redis, chat.keys, nonce)
        except Exception as exc:
            log.warning("chat: cannot redeem a nonce for %s: %s", self.address, exc)
            self.reply(Command.ERROR, ErrorCode.UNAVAILABLE.encode())
            self.disconnect("unavailable", "nonce store unavailable", graceful=True)
            return
        if self.state is Phase.CLOSED:
            return
        if identity is None or not self._take_identity(identity):
            self.violate(ProtocolViolation(CloseCode.POLICY_VIOLATION, "unknown, expired or used nonce"))
            return
        issued, revocations = identity.get("issued_ms"), chat.revocations
        if revocations is not None and type(issued) is int and not revocations.allows_issued(self.uid, issued):
            self.reply(Command.ERROR, ErrorCode.UNAUTHORIZED.encode())  # got just before a logout or ban
            self.disconnect("revoked", "nonce issued before the player's sessions were revoked", graceful=True)
            return
        confirmed = await chat.logged_in(self)
        if self.is_closed:  # (a property: mypy would keep the narrowing from before the await)
            return
        if not confirmed:
            log.warning("chat: Redis did not confirm the subscriptions of uid %d in time", self.uid)
            self.reply(Command.ERROR, ErrorCode.UNAVAILABLE.encode())
            self.disconnect("unavailable", "fan-out unavailable", graceful=True)
            return
        self.state = Phase.LOGGED_IN
        self.conn.ready = True
        identity = {"uid": self.uid, "name": self.name, "world": self.world, "family": self.family}
        self.reply(Command.OK, _json.encode(identity).encode())
        self._resume_reading()
        early, self._early = self._early, []
        try:
            for line in early:
                if self.state is not Phase.LOGGED_IN:
                    break
                self.handle(line)
        except ProtocolViolation as exc:
            self.violate(exc)

    def _take_identity(self, identity: dict[str, Any]) -> bool:
        uid, name, world = identity.get("uid"), identity.get("name"), identity.get("world")
        if type(uid) is not int or not isinstance(name, str) or world is None or isinstance(world, (dict, list)):
            log.warning("chat: nonce for %s holds a malformed identity: %r", self.address, identity)
            return False
        family = identity.get("family")
        if isinstance(family, (dict, list)):
            return False
        self.uid, self.name, self.world, self.family = uid, name, world, family
        keys = self.chat.keys
        self.public = keys.chat_public(world)
        self.family_channel = None if family is None else keys.chat_family(world, family)
        return True

    # Transport ------------------------------------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        return self.state is Phase.CLOSED

    @property
    def address(self) -> str:
        return self.conn.peer

    def reply(self, command: Command, payload: bytes = b"") -> None:
        raise NotImplementedError

    def violate(self, exc: ProtocolViolation) -> None:
        """Close for breaking the contract (PROTOCOL.md: "Protocol violations close the connection at once")."""
        if self.state is Phase.CLOSED:
            return
        self._closing("violation")
        self.conn.violation(exc)

    def disconnect(self, reason: str, message: str, *, graceful: bool = False) -> None:
        """Close for ``reason`` (slow, abuse, unavailable); a slow reader is cut off without a flush."""
        if self.state is Phase.CLOSED:
            return
        log.warning("chat: closing %s (uid %s): %s", self.address, self.uid or "-", message)
        self._closing(reason)
        transport = self.conn.transport
        if graceful:
            self._close_gracefully()
        elif transport is not None:
            self.conn.closed = True
            transport.abort()

    def _close_gracefully(self) -> None:
        self.conn.shutdown()

    def _closing(self, reason: str | None) -> None:
        if reason is not None:
            CHAT.disconnected(reason)
        self.state = Phase.CLOSED
        if self._login is not None and not self._login.done() and self._login is not asyncio.current_task():
            self._login.cancel()
        self.chat.gone(self)

    def connection_gone(self) -> None:
        if self.state is not Phase.CLOSED:
            self._closing(None)

    def _pause_reading(self) -> None:
        if self.conn.transport is not None:
            self.conn.transport.pause_reading()

    def _resume_reading(self) -> None:
        transport = self.conn.transport
        if transport is not None and self.conn.paused_since is None and not transport.is_closing():
            transport.resume_reading()


class TcpChatConnection(Connection, ChatClient):
    """A raw TCP chat client: CRLF-terminated lines both ways."""

    kind = "tcp"

    def __init__(self, listener: Listener) -> None:
        Connection.__init__(self, listener)
        chat: Chat = listener.context["chat"]
        ChatClient.__init__(self, chat)
        self.conn = self
        self.decoder = LineDecoder(chat.config.max_line)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if not self.closed and not self.chat.admit(self):
            log.warning("chat: refusing %s: %d chat connections open", self.peer, len(self.chat.clients))
            self.state = Phase.CLOSED
            self.closed = True
            transport.close()

    def data_received(self, data: bytes) -> None:
        self.last_seen = self.loop.time()
        try:
            for line in self.decoder.feed(data):
                if self.state is Phase.CLOSED:
                    return
                self.handle(line)
        except ProtocolViolation as exc:
            self.violate(exc)

    def reply(self, command: Command, payload: bytes = b"") -> None:
        self.write(encode_line(command, payload))

    def on_close(self) -> None:
        self.connection_gone()


class WsChatClient(ChatClient):
    """The ``/chat`` endpoint of a WebSocket connection: one text frame = one line without the CRLF."""

    kind = "ws"

    def __init__(self, conn: WebSocketConnection, chat: Chat) -> None:
        super().__init__(chat)
        self.conn = conn
        config = chat.config
        # The upgrade is done; now the LOGIN must come within chat.login_timeout (the listener's reaper).
        conn.ready = False
        conn.opened_at = conn.loop.time()
        conn.handshake_timeout = config.login_timeout
        conn.idle_timeout = config.idle_timeout
        if conn.transport is not None:
            conn.transport.set_write_buffer_limits(high=config.send_queue)
        if not chat.admit(self):
            log.warning("chat: refusing %s: %d chat connections open", conn.peer, len(chat.clients))
            self.state = Phase.CLOSED
            # After the 101 response, which is written once this factory returns.
            conn.loop.call_soon(conn.close, CloseCode.POLICY_VIOLATION, "too many chat connections")

    def receive(self, message: bytes | str) -> None:
        if self.state is Phase.CLOSED:
            return
        data = message.encode() if isinstance(message, str) else message
        try:
            self.handle(parse_frame(data, self.chat.config.max_line))
        except ProtocolViolation as exc:
            self.violate(exc)

    def reply(self, command: Command, payload: bytes = b"") -> None:
        conn = self.conn
        assert isinstance(conn, WebSocketConnection)
        conn.send_text(encode_body(command, payload).decode())

    def _close_gracefully(self) -> None:
        conn = self.conn
        assert isinstance(conn, WebSocketConnection)
        self._resume_reading()  # (paused during a login) the closing handshake needs the client's close frame
        conn.close(CloseCode.POLICY_VIOLATION, "closed by the chat edge")

    def closed(self) -> None:
        self.connection_gone()


async def setup(app: App) -> None:
    """The ``chat`` resource in every process with the chat or worker role; the listeners with the chat role."""
    roles = app.roles
    if "chat" not in roles and "worker" not in roles:
        return
    config = app.config.chat
    resources = app.resources
    # The process's bus (server.bus); on Redis, straight to its fan-out, shared with pushes (one subscriber
    # connection per process). The resources close it.
    bus: PubSub = resources.bus.fanout if isinstance(resources.bus, RedisBus) else resources.bus
    revocations: Revocations | None = resources.extra.get("revocations")  # the auth feature, set up before us
    chat = Chat(config, resources.keys, resources.redis, bus, app.node, revocations)
    resources.extra["chat"] = chat

    async def close() -> None:
        chat.close()

    app.shutdown_hooks.append(close)
    if "chat" not in roles:
        return

    def ws_client(conn: WebSocketConnection) -> WsChatClient:
        return WsChatClient(conn, chat)

    app.ws_routes[CHAT_PATH] = Route(ws_client, config.max_line)

    async def listen() -> None:
        await app.listen(
            "chat-tcp",
            TcpChatConnection,
            config.tcp_port,
            max_connections=config.max_connections,
            max_per_address=config.max_per_address,
            proxy_protocol=config.proxy_protocol,
            idle_timeout=config.idle_timeout,
            handshake_timeout=config.login_timeout,
            write_buffer=config.send_queue,
            chat=chat,
        )

    app.listen_hooks.append(listen)
