"""The WebSocket listener (port 8881): ``/`` and ``/gate`` are the gate, ``/chat`` the chat edge.

A WebSocket connection is a plain :class:`~gameserver.drivers.connection.Connection` whose first framer is the
opening handshake (:class:`~gameserver.protocol.handshake.HandshakeFramer`, websockets' checks done in one pass
over the head: RFC 6455 4.2, 426 with ``Sec-WebSocket-Version`` on a version mismatch) and whose first
endpoint is :class:`Upgrade`: it answers the request, and on success the connection switches to our
:class:`~gameserver.protocol.websocket.WebSocketCodec` for the frames (masking, fragments, ping/pong, the
closing handshake, close codes 1002/1007/1009) and to the route's endpoint, with the route's limits if it has
its own. websockets' own frame layer builds a ``Frame``, runs a parser generator and collects a list of writes
per message; the codec parses a whole frame in place, which more than halves the transport's cost per message
(``docs/benchmarks.md``). Behind a proxy in ``http.trusted_proxies``, the handshake's ``X-Forwarded-For`` gives
the connection's ``remote`` (``gameserver/drivers/forwarded.py``).
"""

from __future__ import annotations

import http
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gameserver.drivers.connection import Connection, Driver, Endpoint, Limits
from gameserver.drivers.forwarded import HEADER, Network, client_address
from gameserver.errors import ProtocolViolation
from gameserver.protocol.handshake import WS_VERSION, HandshakeFramer, Request
from gameserver.protocol.websocket import WebSocketCodec


@dataclass(frozen=True, slots=True)
class Route:
    """A WebSocket path.

    Args:
        endpoint: builds the endpoint of a connection upgraded on this path.
        max_size: the largest message it takes.
        limits: the path's own deadlines and write buffer (the chat edge's); with them the endpoint has a
            handshake of its own (``LOGIN``), within ``limits.handshake_timeout`` of the upgrade. None: the
            listener's limits, and the connection is ready once upgraded.
    """

    endpoint: Callable[[Connection], Endpoint]
    max_size: int
    limits: Limits | None = None


class Upgrade:
    """The endpoint of a WebSocket connection until its handshake is answered."""

    pending = 0

    def __init__(self, conn: Connection, routes: Mapping[str, Route], trusted_proxies: Sequence[Network]) -> None:
        self.conn = conn
        self.routes = routes
        self.trusted_proxies = trusted_proxies

    def receive(self, request: Request) -> None:
        conn = self.conn
        framer = conn.framer
        assert isinstance(framer, HandshakeFramer)
        path = request.path.partition("?")[0]
        route = self.routes.get(path)
        version = request.header("Sec-WebSocket-Version")
        accepted = False
        if route is None:
            framer.reject(http.HTTPStatus.NOT_FOUND, f"No WebSocket endpoint at {path}.\n")
        elif version is not None and version != WS_VERSION:
            framer.reject(http.HTTPStatus.UPGRADE_REQUIRED, f"Unsupported WebSocket version {version}.\n", version=True)
        elif not conn.count_as(self._forwarded_client(request)):
            framer.reject(http.HTTPStatus.SERVICE_UNAVAILABLE, "Too many connections from your address.\n")
        else:
            accepted = framer.accept(request).status_code == http.HTTPStatus.SWITCHING_PROTOCOLS
        for data in framer.data_to_send():
            if data:
                conn.write(data)
            else:  # a refused handshake: close once the response is written
                conn.closed = True
                if conn.transport is not None:
                    conn.transport.close()
        if accepted and route is not None and not conn.closed:
            conn.upgrade(WebSocketCodec(route.max_size), route.endpoint, route.limits)
            if framer.rest:
                conn.data_received(framer.rest)

    def _forwarded_client(self, request: Request) -> str:
        """The client's host: ``X-Forwarded-For``'s when the peer is a trusted proxy, else the peer's."""
        return client_address(self.conn.remote, request.header_all(HEADER), self.trusted_proxies)

    def violate(self, exc: ProtocolViolation) -> None:
        self.conn.violation(exc)

    def closed(self) -> None:
        pass


def websocket_driver(routes: Mapping[str, Route], trusted_proxies: Sequence[Network]) -> Driver:
    """The WebSocket listener's driver: the handshake, then the route's framing and endpoint."""
    max_size = max(route.max_size for route in routes.values())

    def upgrade(conn: Connection) -> Upgrade:
        return Upgrade(conn, routes, trusted_proxies)

    return Driver(lambda: HandshakeFramer(max_size), upgrade, handshake=True)
