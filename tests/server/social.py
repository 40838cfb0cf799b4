"""Helpers for the sessions and social tests (issue 16): players through the gate, the chat edge, the admin routes."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import aiohttp

from gameserver.app import App
from tests.clients import ChatClient, TcpClient, WsClient

PASSWORD = "correct horse battery"
ADMIN_KEY = "moderation-key-for-tests"
WAIT = 5.0
_names = itertools.count(1)

Client = TcpClient | WsClient


async def connect(app: App, kind: str = "tcp") -> Client:
    if kind == "tcp":
        return await TcpClient.open(app.ports["gate-tcp"])
    return await WsClient.open(app.ports["ws"])


async def register(app: App, kind: str = "tcp", name: str | None = None) -> tuple[Client, int, str]:
    """A new player logged in on ``app``: their bound connection, uid and username."""
    client = await connect(app, kind)
    name = name or f"player{next(_names)}"
    reply = await client.call("auth.register", {"username": name, "password": PASSWORD})
    assert reply["ok"], reply
    return client, reply["data"]["uid"], name


async def login(app: App, name: str, kind: str = "tcp") -> tuple[Client, dict[str, Any]]:
    """Log ``name`` in on a new connection; returns it and the reply (ok or not)."""
    client = await connect(app, kind)
    return client, await client.call("auth.login", {"username": name, "password": PASSWORD})


async def chat_login(app: App, gate: Client) -> ChatClient:
    """The player of ``gate`` on ``app``'s chat edge (TCP), through a nonce."""
    reply = await gate.call("auth.nonce")
    assert reply["ok"], reply
    chat = await ChatClient.tcp(app.ports["chat-tcp"])
    await chat.login(reply["data"]["nonce"])
    return chat


async def push(client: Client, event: str, timeout: float = WAIT) -> Any:
    """The data of the next push on ``client``, which must be ``event``."""
    async with asyncio.timeout(timeout):
        message = await client.recv()
    assert message.get("event") == event, message
    return message["data"]


class Admin:
    """The /moderation/* routes of one app, with the admin key and a moderator's name."""

    def __init__(self, session: aiohttp.ClientSession, app: App, *, key: str = ADMIN_KEY, who: str = "alice-mod"):
        self.session = session
        self.base = f"http://127.0.0.1:{app.ports['http']}"
        self.headers = {"Authorization": f"Bearer {key}", "X-Moderator": who}

    async def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        async with self.session.post(self.base + path, data=data, headers=self.headers) as response:
            return response.status, await response.json()

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.base + path, headers=self.headers) as response:
            return response.status, await response.json()
