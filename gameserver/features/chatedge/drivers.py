"""How chat connections are driven: the raw TCP listener (``chat.tcp_port``, CRLF lines) and the WebSocket path
``/chat`` (one text frame per line), both a :class:`~gameserver.drivers.connection.Connection` with a
:class:`~gameserver.features.chatedge.client.ChatClient` endpoint, under the ``[chat]`` limits."""

from __future__ import annotations

from gameserver.config import ChatConfig
from gameserver.drivers.connection import Connection, Driver, Limits
from gameserver.drivers.upgrade import Route
from gameserver.features.chatedge.client import ChatClient
from gameserver.features.chatedge.service import Chat
from gameserver.protocol.lines import LineFramer


def chat_limits(config: ChatConfig) -> Limits:
    """The chat edge's limits: ``LOGIN`` within ``chat.login_timeout``, the fan-out's send queue."""
    return Limits(
        max_connections=config.max_connections,
        max_per_address=config.max_per_address,
        proxy_protocol=config.proxy_protocol,
        idle_timeout=config.idle_timeout,
        handshake_timeout=config.login_timeout,
        frame_timeout=config.line_timeout,
        write_buffer=config.send_queue,
    )


def chat_driver(chat: Chat) -> Driver:
    """The raw TCP chat listener's driver."""
    max_line = chat.config.max_line

    def client(conn: Connection) -> ChatClient:
        return ChatClient(conn, chat)

    return Driver(lambda: LineFramer(max_line), client, handshake=True)


def chat_route(chat: Chat) -> Route:
    """The ``/chat`` WebSocket path: after the upgrade, ``LOGIN`` within ``chat.login_timeout``."""

    def client(conn: Connection) -> ChatClient:
        return ChatClient(conn, chat)

    return Route(client, chat.config.max_line, chat_limits(chat.config))
