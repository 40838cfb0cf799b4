"""One connection shape for every TCP listener: a :class:`Connection` owns a framer and an endpoint.

The framer (``gameserver/protocol/``: length-prefixed frames, CRLF lines, the WebSocket upgrade then frames) turns
bytes into messages; the endpoint (a gate session, a chat client, the WebSocket upgrade that picks one) acts on
them and writes back through the framer. The connection keeps what every driver shares: the listener's limits
(handshake, idle and frame deadlines, the write buffer), the graceful close, the drain at shutdown.

With ``proxy_protocol`` on, a connection from a trusted proxy (``http.trusted_proxies``) starts with a PROXY
protocol header naming the client (``gameserver/protocol/proxy.py``). :class:`ProxyHeaderReader` reads it
before the framer sees a byte, within ``handshake_timeout``; the connection's ``peer`` and ``remote`` become
the client's and its per-address count moves to the client, which may refuse it then. A malformed or missing
header closes that connection (``gameserver_protocol_violations_total{code="1002"}``). A connection from any
other address is a direct client, without a header: it cannot name anyone but itself.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from gameserver import metrics
from gameserver.drivers.forwarded import is_trusted
from gameserver.errors import CloseCode, ProtocolViolation
from gameserver.protocol.framing import Framer
from gameserver.protocol.proxy import ProxyHeader, ProxyHeaderDecoder, ProxyHeaderError

if TYPE_CHECKING:
    from gameserver.drivers.listener import Listener

log = logging.getLogger("gameserver.drivers.connection")

DEFAULT_FRAME_TIMEOUT = 10.0


def peer_name(transport: asyncio.BaseTransport) -> str:
    """The TCP peer as ``host:port`` (for logs; the host alone keys per-address limits)."""
    peer = transport.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


class Endpoint(Protocol):
    """What a connection's messages go to: a gate session, a chat client, a WebSocket upgrade."""

    pending: int  # requests of this connection being handled: the socket stays open for their replies

    def receive(self, message: Any) -> None:
        """One whole message from the framer; raise :class:`ProtocolViolation` to close the connection."""

    def violate(self, exc: ProtocolViolation) -> None:
        """The peer broke the wire contract (its bytes or a message): close (``Connection.violation``)."""

    def closed(self) -> None:
        """The connection is gone."""


@dataclass(frozen=True, slots=True)
class Limits:
    """A listener's limits (``[gate]``, ``[chat]``); a WebSocket route may bring its own for its connections.

    Args:
        max_connections: more are accepted and closed at once.
        max_per_address: connections from one client address (0: no cap); more are closed at once. The
            trusted proxies are exempt: they carry many clients.
        idle_timeout: seconds without a byte from the peer before closing.
        handshake_timeout: seconds from accept (or from the upgrade) until the connection is ``ready``.
        frame_timeout: seconds a frame or line begun may take to complete: one byte every few seconds does not
            keep a connection (and its buffer) forever.
        write_buffer: bytes queued for a peer before reading from it pauses.
        proxy_protocol: a connection from a trusted proxy starts with a PROXY protocol header naming the client.
    """

    max_connections: int
    idle_timeout: float
    handshake_timeout: float
    write_buffer: int
    frame_timeout: float = DEFAULT_FRAME_TIMEOUT
    max_per_address: int = 0
    proxy_protocol: bool = False


@dataclass(frozen=True, slots=True)
class Driver:
    """What a listener's connections run: a framer (``gameserver/protocol/``) and an endpoint.

    Args:
        framer: a new framer for each connection.
        endpoint: builds the endpoint of an admitted connection.
        handshake: the endpoint has a handshake of its own (the WebSocket upgrade, the chat ``LOGIN``): the
            connection is not ``ready`` until the endpoint says so, within ``handshake_timeout``.
    """

    framer: Callable[[], Framer]
    endpoint: Callable[[Connection], Endpoint]
    handshake: bool = False


class _Nobody:
    """The endpoint of a connection refused at accept."""

    pending = 0

    def receive(self, message: Any) -> None:
        pass

    def violate(self, exc: ProtocolViolation) -> None:
        pass

    def closed(self) -> None:
        pass


NOBODY = _Nobody()


class Connection(asyncio.Protocol):
    """One TCP connection, whatever it carries: a framer turns its bytes into messages for its endpoint.

    Open/close bookkeeping, the listener's limits (handshake, idle and frame deadlines, the write buffer), the
    graceful close and the drain are here, once for every driver.
    """

    __slots__ = (  # one per connection, thousands idle: no __dict__ (issue 18)
        "listener", "loop", "driver", "framer", "endpoint", "transport", "peer", "remote", "counted_as",
        "opened_at", "last_seen", "ready", "closed", "closing", "eof", "draining", "partial_since",
        "handshake_timeout", "idle_timeout", "frame_timeout", "paused_since",
    )  # fmt: skip

    def __init__(self, listener: Listener, driver: Driver) -> None:
        self.listener = listener
        self.loop = listener.loop
        self.driver = driver
        self.framer: Framer = driver.framer()
        self.endpoint: Endpoint = NOBODY  # set once admitted (connection_made)
        self.transport: asyncio.Transport | None = None
        self.peer = ""  # "host:port" of the TCP peer, for logs
        self.remote = ""  # the client's host (per-address limits): the peer's, or behind a trusted proxy its client
        self.counted_as = ""  # the address this connection counts against in its listener's per-address cap
        self.opened_at = self.last_seen = self.loop.time()
        self.ready = not driver.handshake  # handshake done: the handshake timeout no longer applies
        self.closed = False
        self.closing = False  # a goodbye was sent (WebSocket close frame): no more messages may follow it
        self.eof = False  # the peer shut its sending side; we close once its requests are answered
        self.draining = False  # the server stops: nothing more is read, the connection closes after its last reply
        self.partial_since: float | None = None  # when the frame now incomplete began
        limits = listener.limits
        self.handshake_timeout = limits.handshake_timeout
        self.idle_timeout = limits.idle_timeout
        self.frame_timeout = limits.frame_timeout
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
        self.transport.set_write_buffer_limits(high=listener.limits.write_buffer)  # type: ignore[union-attr]
        if listener.limits.proxy_protocol and is_trusted(self.remote, listener.trusted_proxies):
            transport.set_protocol(ProxyHeaderReader(self))
        self.endpoint = self.driver.endpoint(self)
        if listener.draining:  # accepted while the server stops: nothing will be read
            self.drain()

    def data_received(self, data: bytes) -> None:
        now = self.last_seen = self.loop.time()
        framer = self.framer
        completed = False
        try:
            endpoint = self.endpoint
            for message in framer.feed(data):
                completed = True
                if self.closed:
                    return
                endpoint.receive(message)
        except ProtocolViolation as exc:
            self.endpoint.violate(exc)
            return
        if framer.output or framer.done:
            self._flush(framer)
        if self.framer is not framer:  # upgraded: the new framer was fed what followed the handshake
            return
        if framer.buffered():
            if completed or self.partial_since is None:
                self.partial_since = now
        else:
            self.partial_since = None

    def _flush(self, framer: Framer) -> None:
        output = framer.output
        assert isinstance(output, list)  # only a framer that has something to say keeps a list
        for data in output:
            self.write(data)
        output.clear()
        if framer.done and not self.closed:  # WebSocket closing handshake over: the server closes TCP (7.1.1)
            self.closed = self.closing = True
            if self.transport is not None:
                self.transport.close()

    def upgrade(self, framer: Framer, endpoint: Callable[[Connection], Endpoint], limits: Limits | None) -> None:
        """Switch to ``framer`` and the endpoint it carries (the WebSocket upgrade picked a route). ``limits``
        (the route's) replace the listener's from now on; with them a handshake of the endpoint's own begins."""
        self.framer = framer
        if limits is not None:
            self.handshake_timeout = limits.handshake_timeout
            self.idle_timeout = limits.idle_timeout
            self.frame_timeout = limits.frame_timeout
            self.opened_at = self.loop.time()
            self.ready = False
            if self.transport is not None:
                self.transport.set_write_buffer_limits(high=limits.write_buffer)
        else:
            self.ready = True
        self.endpoint = endpoint(self)

    def eof_received(self) -> bool | None:
        if self.framer.half_close and self.endpoint.pending:
            self.eof = True
            return True  # keep the socket open for the replies; idle() closes it
        return None  # close our side too

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
        self.closed = self.closing = True
        self.listener.release(self)
        self.endpoint.closed()

    def pause_writing(self) -> None:
        # The peer does not read its replies: stop reading its requests until it does.
        self.paused_since = self.loop.time()
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused_since = None
        self.resume_reading()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again, unless the peer's replies are backed up or the server is draining (and has not said
        goodbye: a WebSocket closing handshake needs the peer's close frame)."""
        transport = self.transport
        if transport is not None and self.paused_since is None and not transport.is_closing():
            if not self.draining or self.closing:
                transport.resume_reading()

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
        """Close for a fault: the framer's last word (a WebSocket close frame), then the socket."""
        if not self.closed:
            data = self.framer.failing(code, reason)
            if data:
                self.write(data)
        self.closed = self.closing = True
        if self.transport is not None:
            self.transport.close()

    def expire(self, reason: str) -> None:
        log.info("%s: closing %s: %s", self.listener.name, self.peer, reason)
        self.abort_with(CloseCode.POLICY_VIOLATION, reason)

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close after what is queued: a WebSocket starts its closing handshake (the peer's close frame ends
        the connection), a raw socket just closes."""
        if self.closed:
            return
        data = self.framer.closing(code, reason)
        self.closing = True
        if data is None:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            return
        if data:
            self.write(data)
        if self.draining:
            self.resume_reading()  # for the peer's close frame; the framer drops data frames now

    def shutdown(self) -> None:
        """The server is stopping: close after the replies already queued (WebSocket: close code 1001)."""
        self.close(CloseCode.GOING_AWAY, "server shutting down")

    def drain(self) -> None:
        """The server stops taking requests: read nothing more, and close after the last reply (:meth:`idle`)."""
        if self.closed:
            return
        self.draining = True
        self.pause_reading()
        if not self.endpoint.pending:
            self.shutdown()

    def idle(self) -> None:
        """The endpoint answered its last pending request: close now if the peer or the server is done."""
        if self.eof or self.draining:
            self.shutdown()


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
