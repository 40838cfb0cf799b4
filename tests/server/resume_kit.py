"""A game client of the resume protocol (docs/PROTOCOL.md, "Resume"), for the in-process and integration tests."""

from __future__ import annotations

import asyncio
import itertools
import socket
import struct
from collections.abc import Mapping
from typing import Any

from gameserver.app import App
from gameserver.features.resume.hub import Resumption
from gameserver.features.resume.state import Resumable
from tests.clients import TcpClient, WsClient
from tests.server.social import PASSWORD, WAIT, Client

_names = itertools.count(1)


def hub(app: App) -> Resumption:
    assert app.resumption is not None
    return app.resumption


def state(app: App, token: str) -> Resumable | None:
    """The session ``token`` names, if ``app`` holds it."""
    return hub(app).live.get(token.partition(".")[2])


async def recv(client: Client) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        message = await client.recv()
    assert isinstance(message, dict), message
    return message


def drop(client: Client) -> None:
    """The connection breaks (a TCP reset), without a goodbye."""
    transport = client.writer.transport if isinstance(client, TcpClient) else client.ws.transport
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST, not FIN
    transport.abort()


class Player:
    """A client that asked for resume: its connection, token and every numbered message it received, in order.

    ``received`` is the highest seq received; :meth:`take` reads one message and checks that its seq follows.
    """

    def __init__(self, client: Client, uid: int, name: str, token: str) -> None:
        self.client = client
        self.uid = uid
        self.name = name
        self.token = token
        self.received = 0
        self.numbered: list[dict[str, Any]] = []

    @classmethod
    async def register(cls, server: App | Mapping[str, int], kind: str = "tcp") -> Player:
        """A new account on ``server`` (an app, or the ports of a `gameserver run`), logged in with resume."""
        ports = server.ports if isinstance(server, App) else server
        client = await (TcpClient.open(ports["gate-tcp"]) if kind == "tcp" else WsClient.open(ports["ws"]))
        name = f"resumer{next(_names)}"
        args = {"username": name, "password": PASSWORD, "resume": True}
        reply = await client.call("auth.register", args)
        assert reply["ok"], reply
        resume = reply["data"]["resume"]
        assert reply["seq"] == 1 and resume["buffer"] > 0 and resume["grace"] > 0, reply
        player = cls(client, reply["data"]["uid"], name, resume["token"])
        player.note(reply)
        return player

    def note(self, message: dict[str, Any]) -> None:
        seq = message.get("seq")
        assert seq == self.received + 1, (self.received, message)
        self.received = seq
        self.numbered.append(message)

    async def take(self) -> dict[str, Any]:
        message = await recv(self.client)
        self.note(message)
        return message

    async def call(self, fn: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """A request and its reply; pushes before it are taken too."""
        request_id = next(self.client.ids)
        message = {"id": request_id, "fn": fn, "args": args or {}}
        if isinstance(self.client, TcpClient):
            self.client.send(message)
        else:
            await self.client.send(message)
        while True:
            reply = await self.take()
            if reply.get("id") == request_id:
                return reply

    async def resume(
        self, server: App | Mapping[str, int], kind: str = "tcp", *, binary: bool = True
    ) -> dict[str, Any]:
        """Reconnect to ``server`` and resume; returns the reply, after taking the ``replayed`` messages."""
        ports = server.ports if isinstance(server, App) else server
        if kind == "tcp":
            self.client = await TcpClient.open(ports["gate-tcp"])
        else:
            self.client = await WsClient.open(ports["ws"], binary=binary)
        reply = await self.client.call("session.resume", {"token": self.token, "received": self.received})
        assert "seq" not in reply, reply
        if reply["ok"]:
            self.token = reply["data"]["resume"]["token"]
            for _ in range(reply["data"]["replayed"]):
                await self.take()
        return reply

    async def failed_resume(self, server: App | Mapping[str, int]) -> str:
        """Resume on a new connection, which must fail; the failure's reason (the message's first word)."""
        reply = await self.resume(server)
        assert not reply["ok"] and reply["error"]["code"] == "resume_failed", reply
        message: str = reply["error"]["message"]
        return message.partition(":")[0]
