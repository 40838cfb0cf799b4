"""A listening socket and the limits its connections share.

Each :class:`Listener` caps its open connections, in all and per client address (:class:`AddressCounts`: a
trusted proxy, which carries many clients, is exempt), and its reaper closes connections idle past
``idle_timeout``, those that have not finished their handshake (WebSocket upgrade, chat ``LOGIN``) within
``handshake_timeout``, and those with a frame or line begun and not complete within ``frame_timeout``. A peer
that does not read its replies is not read from (write buffer over ``write_buffer``). Every connection is a
:class:`~gameserver.drivers.connection.Connection` running the listener's :class:`Driver`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from gameserver import metrics
from gameserver.drivers.connection import Connection, Driver, Limits
from gameserver.drivers.forwarded import Network, is_trusted
from gameserver.errors import ConfigError

log = logging.getLogger("gameserver.drivers.listener")

DEFAULT_BACKLOG = 4096


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
    """A server socket with its connection limits, running one :class:`Driver` on each connection.

    Args:
        name: for logs and metrics (``gate-tcp``, ``ws``, ``chat-tcp``).
        driver: the framer and endpoint of each accepted connection.
        limits: the caps and deadlines of its connections.
        trusted_proxies: exempt from ``max_per_address``; only they may send a PROXY header.
        backlog: connections the kernel queues before they are accepted (``server.backlog``; capped by
            ``net.core.somaxconn``).

    Raises:
        ConfigError: ``proxy_protocol`` is on and no proxy is trusted: no header would ever be read.
    """

    def __init__(
        self,
        name: str,
        driver: Driver,
        limits: Limits,
        *,
        trusted_proxies: Sequence[Network] = (),
        backlog: int = DEFAULT_BACKLOG,
    ) -> None:
        self.name = name
        self.driver = driver
        self.limits = limits
        self.limit = limits.max_connections
        self.trusted_proxies = trusted_proxies
        self.addresses = AddressCounts(limits.max_per_address, trusted_proxies)
        self.backlog = backlog
        if limits.proxy_protocol and not trusted_proxies:
            raise ConfigError(
                f"{name}: the PROXY protocol is on (gate.proxy_protocol, gate.ws_proxy_protocol, chat.proxy_protocol) "
                "but http.trusted_proxies is empty: list the proxies that send the header"
            )
        self.connections: set[Connection] = set()
        self.draining = False  # the server is stopping: connections read nothing more
        self.loop = asyncio.get_running_loop()
        self.server: asyncio.Server | None = None
        self.port = 0
        self.refusals = Refusals(name, limits.max_connections)
        self._gauge = metrics.CONNECTIONS.labels(name)
        self._reaper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> int:
        driver = self.driver
        self.server = await self.loop.create_server(
            lambda: Connection(self, driver), host, port, reuse_address=True, backlog=self.backlog
        )
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
        limits = self.limits
        period = min(1.0, limits.idle_timeout / 4, limits.handshake_timeout / 4, limits.frame_timeout / 4)
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
                elif conn.partial_since is not None and now - conn.partial_since > conn.frame_timeout:
                    conn.expire(f"a frame begun {conn.frame_timeout:g}s ago is not complete")

    def stop_accepting(self) -> None:
        if self.server is not None:
            self.server.close()

    def drain(self) -> None:
        """Stop reading on every connection at once (and on any accepted from now on); each closes after its last
        reply. Accepting goes on until :meth:`stop_accepting`: a connection accepted meanwhile closes at once."""
        self.draining = True
        for conn in list(self.connections):
            conn.drain()

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
