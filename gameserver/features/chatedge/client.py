"""One chat connection's session, raw TCP or WebSocket alike: login, commands, rate, channels.

:class:`ChatClient` is the endpoint of a :class:`~gameserver.drivers.connection.Connection`: it gets lines
(``LineFramer`` on TCP) or WebSocket text frames (each one line without its CRLF), and writes its replies through
the connection's framer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine
from enum import Enum
from typing import TYPE_CHECKING, Any

from enums.errors import ErrorCode, ModuleErrorCode
from gameserver.drivers.connection import Connection
from gameserver.errors import CloseCode, ProtocolViolation
from gameserver.features.identity.nonces import redeem_nonce
from gameserver.metrics import CHAT
from gameserver.protocol.framing import Wire
from gameserver.protocol.lines import Command, Line, encode_body, parse_frame

if TYPE_CHECKING:
    from gameserver.features.chatedge.service import Chat, UserLimits

log = logging.getLogger("gameserver.features.chatedge")

MAX_EARLY_LINES = 32  # lines a client may send before its LOGIN is answered; more is a flood

_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class Phase(Enum):
    NEW = "new"
    LOGGING_IN = "logging_in"
    LOGGED_IN = "logged_in"
    CLOSED = "closed"


class ChatClient:
    """The chat endpoint of one connection: ``conn`` is the :class:`Connection` whose transport the fan-out
    writes to. Refused (closed after the upgrade, on WebSocket) past ``chat.max_connections``."""

    pending = 0  # no requests: a draining server closes a chat connection at once

    def __init__(self, conn: Connection, chat: Chat) -> None:
        self.conn = conn
        self.chat = chat
        self.kind = "ws" if conn.framer.wire is Wire.WEBSOCKET else "tcp"
        self._text = conn.framer.text
        self.state = Phase.NEW
        self.uid = 0
        self.name = ""
        self.world: object = None
        self.family: object = None
        self.public: str | None = None
        self.family_channel: str | None = None
        self.joining: str | None = None  # a family channel being moved to (Chat._move)
        self.limits: UserLimits | None = None
        self._early: list[Line] = []
        self._login: asyncio.Task[None] | None = None
        if not chat.admit(self):
            log.warning("chat: refusing %s: %d chat connections open", conn.peer, len(chat.clients))
            self.state = Phase.CLOSED
            # On WebSocket after the 101 response, which is written once this endpoint is built.
            conn.loop.call_soon(conn.close, CloseCode.POLICY_VIOLATION, "too many chat connections")

    def receive(self, message: Line | bytes | str) -> None:
        """One line (raw TCP) or one WebSocket frame (a line without its CRLF)."""
        if self.state is Phase.CLOSED:
            return
        try:
            if isinstance(message, bytes):  # chat lines are text frames (PROTOCOL.md, "Chat edge")
                raise ProtocolViolation(CloseCode.UNSUPPORTED_DATA, "expected text frames, got a binary frame")
            if isinstance(message, str):  # a WebSocket frame
                message = parse_frame(message.encode(), self.chat.config.max_line)
            self.handle(message)
        except ProtocolViolation as exc:
            self.violate(exc)

    def closed(self) -> None:
        self.connection_gone()

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
            elif command is Command.HISTORY:
                self._spawn(self._history(line.payload))
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
            guard = self.chat.guard
            if guard is not None:  # a muted sender, a line with a listed word
                checked, refused = guard.check(self.uid, text)
                if checked is None:
                    self.reply(Command.ERROR, (refused or ErrorCode.FORBIDDEN).encode())
                    return
                text = checked
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
        if chat.guard is not None:
            try:
                await chat.guard.load(self.uid)
            except Exception as exc:  # Redis down: the nonce could hardly have been redeemed either
                log.warning("chat: cannot read the mute of uid %d: %s", self.uid, exc)
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
        await self._send_history(self.chat.config.history_on_join)
        if self.is_closed:
            return
        self._resume_reading()
        early, self._early = self._early, []
        try:
            for line in early:
                if self.state is not Phase.LOGGED_IN:
                    break
                self.handle(line)
        except ProtocolViolation as exc:
            self.violate(exc)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name="chat-history")
        self.chat._tasks.add(task)
        task.add_done_callback(self.chat._tasks.discard)

    async def _history(self, payload: str) -> None:
        """``HISTORY <public|family> [count]``: answered with one ``HISTORY`` line (docs/PROTOCOL.md)."""
        which, _, count_text = payload.strip().partition(" ")
        channel = {"public": self.public, "family": self.family_channel}.get(which.lower())
        try:
            config = self.chat.config
            count = int(count_text) if count_text.strip() else config.history_on_join or config.history
        except ValueError:
            count = -1
        if channel is None or count < 0:
            self.reply(Command.ERROR, ErrorCode.BAD_REQUEST.encode())
            return
        await self._send_history(count, only=channel)

    async def _send_history(self, count: int, only: str | None = None) -> None:
        """One ``HISTORY {"channel", "lines"}`` line per channel of this client (or ``only`` that one)."""
        if count <= 0 and only is None:
            return
        for which, channel in (("public", self.public), ("family", self.family_channel)):
            if channel is None or (only is not None and channel != only):
                continue
            try:
                lines = await self.chat.history.latest(channel, count)
            except Exception as exc:
                log.warning("chat: cannot read the history of %s: %s", channel, exc)
                self.reply(Command.ERROR, ErrorCode.UNAVAILABLE.encode())
                return
            if self.is_closed:
                return
            if not lines and only is None:
                continue  # on join, nothing to catch up on: no line (clients that never ask see none)
            body = _json.encode({"channel": which, "lines": lines}).encode()
            self.reply(Command.HISTORY, body)

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
        self.conn.write(self._text(encode_body(command, payload)))

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
        self.conn.resume_reading()  # (paused during a login) a closing handshake needs the client's close frame
        self.conn.close(CloseCode.POLICY_VIOLATION, "closed by the chat edge")

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
        self.conn.pause_reading()

    def _resume_reading(self) -> None:
        self.conn.resume_reading()
