"""A listening socket and its connections: the limits every listener shares.

Each :class:`Listener` caps its open connections, in all and per client address (:class:`AddressCounts`: a
trusted proxy, which carries many clients, is exempt), closes connections idle past ``idle_timeout`` and those
that have not finished their handshake (WebSocket upgrade, chat ``LOGIN``) within ``handshake_timeout``,
and stops reading from a peer that does not read its replies (write buffer over ``write_buffer``).
Drivers subclass :class:`Connection` and implement ``data_received``.

With ``proxy_protocol`` on, a connection from a trusted proxy (``http.trusted_proxies``) starts with a PROXY
protocol header naming the client (``gameserver/protocol/proxy.py``). :class:`ProxyHeaderReader` reads it
before the driver sees a byte, within ``handshake_timeout``; the connection's ``peer`` and ``remote`` become
the client's and its per-address count moves to the client, which may refuse it then. A malformed or missing
header closes that connection (``gameserver_protocol_violations_total{code="1002"}``). A connection from any
other address is a direct client, without a header: it cannot name anyone but itself.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

from gameserver import metrics
from gameserver.drivers.forwarded import Network, is_trusted
from gameserver.errors import CloseCode, ConfigError, ProtocolViolation
from gameserver.protocol.proxy import ProxyHeader, ProxyHeaderDecoder, ProxyHeaderError

log = logging.getLogger("gameserver.drivers.listener")


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
        listener = self.listener
        refusal = listener.admit(self)
        if refusal is not None:
            listener.refusals.refused(self.peer, self.loop.time(), refusal)
            self.closed = True
            transport.close()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.set_write_buffer_limits(high=listener.write_buffer)  # type: ignore[union-attr]
        if listener.proxy_protocol and is_trusted(self.remote, listener.trusted_proxies):
            transport.set_protocol(ProxyHeaderReader(self))

    def proxied(self, header: ProxyHeader) -> bool:
        """The trusted proxy's header named the client: from now on the connection is the client's, and counts
        against the client's address. False if that address is over its cap (the connection is then closed)."""
        if header.source is None:
            return True  # the proxy's own connection (a health check): it stays the proxy's
        host, port = header.source
        proxy, self.peer = self.peer, f"{host}:{port}"
        if not self.count_as(host):
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            return False
        log.debug("%s: %s is %s (PROXY v%d)", self.listener.name, proxy, self.peer, header.version)
        return True

    def count_as(self, host: str) -> bool:
        """A trusted proxy named this connection's client (a PROXY header, a WebSocket handshake's
        X-Forwarded-For): it becomes ``host``'s ``remote`` and counts against ``host``'s per-address cap. False if
        ``host`` is at its cap: the refusal is logged and the caller refuses the connection."""
        if host == self.remote:
            return True
        listener = self.listener
        refusal = listener.recount(self, host)
        if refusal is not None:
            listener.refusals.refused(self.peer, self.loop.time(), refusal)
            return False
        self.remote = host
        return True

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


class ProxyHeaderReader(asyncio.Protocol):
    """A connection's protocol while the PROXY header of its trusted proxy is read; then the connection's own.

    The driver's ``data_received`` never sees the header, and pays nothing for it once it is read: the transport
    is handed back to the connection (``set_protocol``) with the bytes that followed the header. Until then the
    connection is not ``ready``, so the listener's handshake timeout covers the header too.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.decoder = ProxyHeaderDecoder()
        self.was_ready = conn.ready
        conn.ready = False

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.last_seen = conn.loop.time()
        if conn.closed:
            return
        try:
            header = self.decoder.feed(data)
        except ProxyHeaderError as exc:
            conn.violation(exc)
            return
        if header is None:
            return
        conn.ready = self.was_ready
        assert conn.transport is not None
        conn.transport.set_protocol(conn)
        if conn.proxied(header) and self.decoder.rest:
            conn.data_received(self.decoder.rest)

    def eof_received(self) -> bool | None:
        return None  # gone before its header: close

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.connection_lost(exc)

    def pause_writing(self) -> None:
        self.conn.pause_writing()

    def resume_writing(self) -> None:
        self.conn.resume_writing()


class AddressCounts:
    """Open connections per client address, at most ``limit`` each (0: no cap, and nothing is kept).

    The trusted proxies are exempt: each carries many clients. Shared by :class:`Listener` and the HTTP listener.
    """

    def __init__(self, limit: int, trusted: Sequence[Network] = ()) -> None:
        self.limit = limit
        self.trusted = trusted
        self.open: dict[str, int] = {}  # addresses with connections open (kept with a cap only)

    def add(self, address: str) -> str | None:
        """Count one more connection from ``address``; None, or why it is refused (then it is not counted)."""
        if not self.limit:
            return None
        count = self.open.get(address, 0)
        if count >= self.limit and not is_trusted(address, self.trusted):
            return f"{count} connections open from {address}"
        self.open[address] = count + 1
        return None

    def remove(self, address: str) -> None:
        """One connection from ``address`` is gone."""
        if not self.limit:
            return
        left = self.open.pop(address, 1) - 1
        if left:
            self.open[address] = left


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
        proxy_protocol: a connection from a trusted proxy starts with a PROXY protocol header naming the client.

    Raises:
        ConfigError: ``proxy_protocol`` is on and no proxy is trusted: no header would ever be read.
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
        proxy_protocol: bool = False,
        **context: Any,
    ) -> None:
        self.name = name
        self.factory = factory
        self.limit = max_connections
        self.trusted_proxies: Sequence[Network] = context.get("trusted_proxies", ())
        self.addresses = AddressCounts(max_per_address, self.trusted_proxies)
        self.proxy_protocol = proxy_protocol
        if proxy_protocol and not self.trusted_proxies:
            raise ConfigError(
                f"{name}: the PROXY protocol is on (gate.proxy_protocol, gate.ws_proxy_protocol, chat.proxy_protocol) "
                "but http.trusted_proxies is empty: list the proxies that send the header"
            )
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

    @property
    def by_address(self) -> dict[str, int]:
        """Open connections per client address (with a per-address cap only)."""
        return self.addresses.open

    def admit(self, conn: Connection) -> str | None:
        """Count a new connection in; None, or why it is refused."""
        if len(self.connections) >= self.limit:
            return f"{self.limit} connections open"
        refusal = self.addresses.add(conn.remote)
        if refusal is not None:
            return refusal
        conn.counted_as = conn.remote  # a PROXY header or a WebSocket handshake may name another client later
        self.connections.add(conn)
        self._gauge.inc()
        return None

    def recount(self, conn: Connection, address: str) -> str | None:
        """Count an admitted connection against ``address`` (the client its proxy named) instead; None, or why
        it is refused (it then still counts where it did, until it is released)."""
        refusal = self.addresses.add(address)
        if refusal is None:
            self.addresses.remove(conn.counted_as)
            conn.counted_as = address
        return refusal

    def release(self, conn: Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self._gauge.dec()
            self.addresses.remove(conn.counted_as)

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
