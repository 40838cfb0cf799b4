"""The chat of one process (:class:`Chat`, the ``chat`` resource): its channels, its logged-in clients, family
moves, system messages, and the connection to the fan-out bus (``server.bus``: :class:`~gameserver.bus.local.LocalBus`
in one process; between processes the :class:`~gameserver.bus.fanout.RedisFanout` of the process's
:class:`~gameserver.bus.redispubsub.RedisBus`). A message is encoded once where it is published.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Protocol

from redis.asyncio import Redis

from enums.errors import ErrorCode
from gameserver.bus.fanout import RedisFanout
from gameserver.bus.local import Receiver
from gameserver.config import ChatConfig
from gameserver.drivers.connection import Connection
from gameserver.features.chatedge.channel import Channel
from gameserver.features.chatedge.client import ChatClient, Phase
from gameserver.features.chathistory import ChatHistory
from gameserver.features.identity.revocations import Revocations
from gameserver.features.moderation.chatguard import ChatGuard
from gameserver.keys import Keys
from gameserver.metrics import CHAT
from gameserver.protocol.lines import Command, encode_body
from gameserver.ratelimit import TokenBucket

log = logging.getLogger("gameserver.features.chatedge")

CHAT_PATH = "/chat"
SYSTEM_UID = 0
SUBSCRIBE_TIMEOUT = 5.0  # seconds to wait for Redis to confirm a login's subscriptions

_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class PubSub(Protocol):
    """What the chat needs of a bus: :class:`~gameserver.bus.local.LocalBus` or :class:`RedisFanout`."""

    def publish(self, channel: str, payload: bytes) -> None: ...

    def subscribe(self, channel: str, receiver: Receiver) -> None: ...

    def unsubscribe(self, channel: str, receiver: Receiver) -> None: ...


def _count_publish_failed(count: int) -> None:
    CHAT.publish_failed += count


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class UserLimits:
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
        history: ChatHistory | None = None,
        guard: ChatGuard | None = None,
    ) -> None:
        self.config = config
        self.revocations = revocations
        self.history = history or ChatHistory(redis, keys, keep=0)
        self.guard = guard  # mutes and the word filter (the moderation feature)
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
        self.limits: dict[int, UserLimits] = {}
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
        ts = now_ms()
        line = {"id": self.history.new_id(ts), "uid": uid, "name": name, "text": text, "ts": ts}
        payload = _json.encode(line).encode()
        CHAT.messages += 1
        self.bus.publish(channel, encode_body(command, payload))
        self.history.append(channel, payload)

    def close(self) -> None:
        """Shutdown: drop what is still gathered for a flush."""
        for channel in self.channels.values():
            channel.cancel()
        self.history.close()

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
            limits = self.limits[uid] = UserLimits(self.config, self.loop.time())
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
                if self.guard is not None:
                    self.guard.forget(uid)
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
            client = conn.endpoint
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
