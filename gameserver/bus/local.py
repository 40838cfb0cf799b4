"""The seams where the roles meet, so that they can later live in different processes.

Three things cross between roles: a gate hands a request to a worker (``submit``; the reply comes back
through the caller's :class:`Session`), a handler pushes an event to a player wherever they are connected
(``push``), and the chat edge fans a message out to a channel (``publish`` / ``subscribe``).
:class:`LocalBus` does all three inside one process with plain calls: no serialisation, no Redis on the hot
path. :class:`~gameserver.bus.redispubsub.RedisBus` (``server.bus`` redis or nats) carries pushes and channels
between processes through Redis pub/sub; :class:`~gameserver.bus.remote.GateBus` adds ``submit`` to workers in
other processes (``--roles gate`` apart from ``--roles worker``) through Redis Streams or NATS JetStream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from gameserver.bus.sessions import Session, Sessions
from gameserver.dispatch.dispatcher import Dispatcher
from gameserver.protocol.codec import Format

Receiver = Callable[[str, bytes], None]
"""Gets ``(channel, payload)``; the payload is shared by every receiver of the channel: encode once."""


class Bus(Protocol):
    def submit(self, message: dict[str, Any], session: Session, fmt: Format) -> None: ...

    def push(self, uid: int, event: str, data: Any) -> None: ...

    def publish(self, channel: str, payload: bytes) -> None: ...

    def subscribe(self, channel: str, receiver: Receiver) -> None: ...

    def unsubscribe(self, channel: str, receiver: Receiver) -> None: ...

    async def subscribed(self, channels: list[str], timeout: float) -> bool:
        """Wait until messages published on ``channels`` from any process reach this one; False after
        ``timeout`` seconds."""
        ...

    async def close(self) -> None: ...


class LocalBus:
    """Everything in this process."""

    def __init__(self, sessions: Sessions, dispatcher: Dispatcher | None = None) -> None:
        self.sessions = sessions
        self.dispatcher = dispatcher
        self.channels: dict[str, set[Receiver]] = {}
        if dispatcher is not None:
            self.attach(dispatcher)

    def attach(self, dispatcher: Dispatcher) -> None:
        """Route submitted requests straight into ``dispatcher`` (this process runs the worker role)."""
        self.dispatcher = dispatcher
        self.submit = dispatcher.dispatch  # type: ignore[method-assign]

    def submit(self, message: dict[str, Any], session: Session, fmt: Format) -> None:
        raise RuntimeError("this process runs no worker role and has no bus to a remote one")

    def push(self, uid: int, event: str, data: Any) -> None:
        self.sessions.push(uid, event, data)

    def publish(self, channel: str, payload: bytes) -> None:
        for receiver in tuple(self.channels.get(channel, ())):
            receiver(channel, payload)

    def subscribe(self, channel: str, receiver: Receiver) -> None:
        self.channels.setdefault(channel, set()).add(receiver)

    def unsubscribe(self, channel: str, receiver: Receiver) -> None:
        receivers = self.channels.get(channel)
        if receivers is not None:
            receivers.discard(receiver)
            if not receivers:
                del self.channels[channel]

    async def subscribed(self, channels: list[str], timeout: float) -> bool:
        return True  # one process: a subscription takes effect at once

    async def close(self) -> None:
        self.channels.clear()
