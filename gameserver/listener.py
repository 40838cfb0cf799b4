"""A listening socket and its connections: the limits every listener shares.

Each :class:`Listener` caps its open connections, in all and per client address (a trusted proxy, which carries
many clients, is exempt), closes connections idle past ``idle_timeout`` and those
that have not finished their handshake (WebSocket upgrade, chat ``LOGIN``) within ``handshake_timeout``,
and stops reading from a peer that does not read its replies (write buffer over ``write_buffer``).
Drivers subclass :class:`Connection` and implement ``data_received``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

from gameserver import metrics
from gameserver.errors import CloseCode, ProtocolViolation
from gameserver.forwarded import is_trusted

log = logging.getLogger("gameserver.listener")


def peer_name(transport: asyncio.BaseTransport) -> str:
    """The TCP peer as ``host:port`` (for logs; the host alone keys per-address limits)."""
    peer = transport.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


class Connection(asyncio.Protocol):
    """The transport side of one client: open/close bookkeeping, timeouts, flow control."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.loop = listener.loop
        self.transport: asyncio.Transport | None = None
        self.peer = ""  # "host:port" of the TCP peer, for logs
        self.remote = ""  # the client's host (per-address limits): the peer's, or behind a trusted proxy its client
        self.counted_as = ""  # the address this connection counts against in its listener's per-address cap
        self.opened_at = self.last_seen = self.loop.time()
        self.ready = False  # handshake done: the handshake timeout no longer applies
        self.closed = False
        # The listener's limits, per connection so that a driver can re-arm them (chat: LOGIN after the upgrade).
        self.handshake_timeout = listener.handshake_timeout
        self.idle_timeout = listener.idle_timeout
        self.paused_since: float | None = None  # when the write buffer went over the bound; None while under it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport
        self.peer = peer_name(transport)
        self.remote = self.peer.rpartition(":")[0] or self.peer
        refusal = self.listener.admit(self)
        if refusal is not None:
            self.listener.refusals.refused(self.peer, self.loop.time(), refusal)
            self.closed = True
            transport.close()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.set_write_buffer_limits(high=self.listener.write_buffer)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.listener.release(self)
        self.on_close()

    def on_close(self) -> None:
        """Called once when the connection is gone; subclasses release what they hold."""

    def pause_writing(self) -> None:
        # The peer does not read its replies: stop reading its requests until it does.
        self.paused_since = self.loop.time()
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused_since = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def violation(self, exc: ProtocolViolation) -> None:
        """Close this connection, and only this one, for breaking the wire contract."""
        metrics.VIOLATIONS.labels(self.listener.name, int(exc.close_code)).inc()
        log.info("%s: closing %s: %s (%d)", self.listener.name, self.peer, exc.message, exc.close_code)
        self.abort_with(exc.close_code, exc.message)

    def abort_with(self, code: CloseCode, reason: str) -> None:
        """Close for a fault; a raw socket just closes after what is already queued."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def expire(self, reason: str) -> None:
        log.info("%s: closing %s: %s", self.listener.name, self.peer, reason)
        self.abort_with(CloseCode.POLICY_VIOLATION, reason)

    def shutdown(self) -> None:
        """The server is stopping: close after the replies already queued (WebSocket: close code 1001)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Refusals:
    """Logs connections refused at a listener's cap: at warning, at most once per ``interval`` seconds.

    A flood of connections over the cap then costs a log line a second, each naming one refused peer and how
    many others were refused since the previous line, not a line per connection.
    """

    def __init__(self, name: str, limit: int, interval: float = 1.0) -> None:
        self.name = name
        self.limit = limit
        self.interval = interval
        self.unlogged = 0
        self.next_log = float("-inf")

    def refused(self, peer: str, now: float, why: str | None = None) -> None:
        """``peer`` was refused; ``why`` says which cap (default: the listener's total)."""
        if now < self.next_log:
            self.unlogged += 1
            return
        more = f" (and {self.unlogged} more since the last report)" if self.unlogged else ""
        why = why or f"{self.limit} connections open"
        log.warning("%s: refusing %s: %s%s", self.name, peer, why, more)
        self.unlogged = 0
        self.next_log = now + self.interval


class Listener:
    """A server socket with its connection limits.

    Args:
        name: for logs and metrics (``gate-tcp``, ``ws``, ``chat-tcp``).
        factory: builds the :class:`Connection` for each accepted socket.
        max_connections: more are accepted and closed at once.
        max_per_address: connections from one client address (0: no cap); more are closed at once. The
            trusted proxies (``trusted_proxies`` in the context) are exempt: they carry many clients.
        idle_timeout: seconds without a byte from the peer before closing.
        handshake_timeout: seconds from accept until the connection is ``ready``.
        write_buffer: bytes queued for a peer before reading from it pauses.
    """

    def __init__(
        self,
        name: str,
        factory: Callable[[Listener], Connection],
        *,
        max_connections: int,
        max_per_address: int = 0,
        idle_timeout: float,
        handshake_timeout: float,
        write_buffer: int,
        **context: Any,
    ) -> None:
        self.name = name
        self.factory = factory
        self.limit = max_connections
        self.per_address = max_per_address
        self.by_address: dict[str, int] = {}  # open connections per client address (kept with a cap only)
        self.idle_timeout = idle_timeout
        self.handshake_timeout = handshake_timeout
        self.write_buffer = write_buffer
        self.context = context  # what the drivers need: dispatcher, sessions, config, ...
        self.connections: set[Connection] = set()
        self.loop = asyncio.get_running_loop()
        self.server: asyncio.Server | None = None
        self.port = 0
        self.refusals = Refusals(name, max_connections)
        self._gauge = metrics.CONNECTIONS.labels(name)
        self._reaper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> int:
        self.server = await self.loop.create_server(lambda: self.factory(self), host, port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        self._reaper = asyncio.create_task(self._reap(), name=f"{self.name}-reaper")
        log.info("%s listening on %s:%d", self.name, host, self.port)
        return self.port

    def admit(self, conn: Connection) -> str | None:
        """Count a new connection in; None, or why it is refused."""
        if len(self.connections) >= self.limit:
            return f"{self.limit} connections open"
        if self.per_address:
            open_here = self.by_address.get(conn.remote, 0)
            if open_here >= self.per_address and not is_trusted(conn.remote, self.context.get("trusted_proxies", ())):
                return f"{open_here} connections open from {conn.remote}"
            self.by_address[conn.remote] = open_here + 1
            conn.counted_as = conn.remote  # a WebSocket handshake may name another client later (forwarded.py)
        self.connections.add(conn)
        self._gauge.inc()
        return None

    def release(self, conn: Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self._gauge.dec()
            if self.per_address:
                left = self.by_address.pop(conn.counted_as, 1) - 1
                if left:
                    self.by_address[conn.counted_as] = left

    async def _reap(self) -> None:
        period = min(1.0, self.idle_timeout / 4, self.handshake_timeout / 4)
        while True:
            await asyncio.sleep(period)
            now = self.loop.time()
            for conn in list(self.connections):
                if conn.closed:
                    continue
                if not conn.ready and now - conn.opened_at > conn.handshake_timeout:
                    conn.expire(f"no handshake within {conn.handshake_timeout:g}s")
                elif now - conn.last_seen > conn.idle_timeout:
                    conn.expire(f"idle for {conn.idle_timeout:g}s")

    def stop_accepting(self) -> None:
        if self.server is not None:
            self.server.close()

    async def close(self, grace: float) -> None:
        """Close every connection the graceful way and wait up to ``grace`` seconds for them to go."""
        self.stop_accepting()
        if self._reaper is not None:
            self._reaper.cancel()
        for conn in list(self.connections):
            conn.shutdown()
        deadline = self.loop.time() + grace
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        if self.server is not None:
            await self.server.wait_closed()
