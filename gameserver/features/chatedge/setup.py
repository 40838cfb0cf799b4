"""The chat feature's lifespan (composed in ``gameserver/app.py``).

The ``chat`` resource in every process with the chat or worker role (handlers post system messages and move
families); with the chat role also the TCP listener (``chat.tcp_port``) and the WebSocket path ``/chat``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from redis.asyncio import Redis

from gameserver.bus.local import Bus
from gameserver.bus.redispubsub import RedisBus
from gameserver.config import ChatConfig
from gameserver.features.chatedge.drivers import chat_driver, chat_limits, chat_route
from gameserver.features.chatedge.service import CHAT_PATH, Chat, PubSub
from gameserver.features.chathistory import ChatHistory
from gameserver.features.identity.revocations import Revocations
from gameserver.features.lifespan import Contribution, ListenerSpec
from gameserver.features.moderation.chatguard import ChatGuard
from gameserver.features.moderation.feature import ModerationFeature
from gameserver.keys import Keys


@dataclass
class ChatFeature(Contribution):
    chat: Chat = field(kw_only=True)


@asynccontextmanager
async def lifespan(
    config: ChatConfig,
    *,
    redis: Redis,
    keys: Keys,
    bus: Bus,
    node: str,
    revocations: Revocations | None,
    serve: bool,
    moderation: ModerationFeature | None = None,
    shared: bool = False,
) -> AsyncIterator[ChatFeature]:
    """Args:
    revocations: the identity feature's: a revoked player's chat connections close, a stale nonce is refused.
    serve: run the chat edge's listeners (the ``chat`` role).
    moderation: the moderation feature's: muted players' lines are refused, the word filter applied.
    shared: Redis is shared with other processes (``redis.url``): the history lives there, else in this process.
    """
    # The process's bus (server.bus); on Redis, straight to its fan-out, shared with pushes (one subscriber
    # connection per process). The resources close it.
    pubsub: PubSub = bus.fanout if isinstance(bus, RedisBus) else bus
    history = ChatHistory(redis, keys, keep=config.history, local=not shared)
    guard = None
    if moderation is not None:
        guard = ChatGuard(moderation.store, moderation.words, moderation.mode)
        pubsub.subscribe(guard.channel, guard.receiver())
    chat = Chat(config, keys, redis, pubsub, node, revocations, history, guard)
    feature = ChatFeature(resources={"chat": chat}, chat=chat)
    if serve:
        feature.ws_routes[CHAT_PATH] = chat_route(chat)
        feature.listeners.append(
            ListenerSpec("chat-tcp", chat_driver(chat), chat_limits(config), config.tcp_port, "chat.tcp_port")
        )
    try:
        yield feature
    finally:
        if guard is not None:
            pubsub.unsubscribe(guard.channel, guard.receiver())
        chat.close()
