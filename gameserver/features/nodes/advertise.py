"""Where clients and a front reach this node: the host it advertises and each listener's address and URL.

``server.advertise_host`` names the host; by default it is ``server.host``, except that a wildcard bind address
(``0.0.0.0``, ``::``) names no host anybody can reach: then the node advertises the local address it reaches Redis
from (the network the front reads the registry on) and says so in the log. ``server.advertise_urls`` sets a
listener's client URL outright (``ws=wss://play.example.com``): a node behind NAT or a TLS front.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit

from gameserver.config import Config
from gameserver.features.nodes.record import address

log = logging.getLogger("gameserver.features.nodes")

WILDCARDS = frozenset({"", "0.0.0.0", "::"})
LOOPBACK = "127.0.0.1"
SCHEMES = {"gate-tcp": "tcp", "ws": "ws", "chat-tcp": "tcp", "http": "http"}  # a listener not named here: tcp
REDIS_PORT = 6379


async def advertised_host(config: Config) -> str:
    """The host this node gives out (see the module's docstring)."""
    server = config.server
    if server.advertise_host:
        return server.advertise_host
    if server.host not in WILDCARDS:
        return server.host
    host = await address_towards(config.redis.url) if config.redis.url else None
    host = host or LOOPBACK
    log.warning(
        "server.host %s is every interface and server.advertise_host is not set: the node registry gives out %s%s; "
        "set server.advertise_host to the address the front and clients reach this node at",
        server.host or '""',
        host,
        " (the address this host reaches Redis from)" if config.redis.url else "",
    )
    return host


async def address_towards(redis_url: str) -> str | None:
    """The local address the kernel routes ``redis_url``'s host from, or None (no route, unknown host).

    A UDP socket's ``connect`` only chooses the route: no packet is sent.
    """
    target = urlsplit(redis_url)
    if not target.hostname:
        return None
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(target.hostname, target.port or REDIS_PORT, type=socket.SOCK_DGRAM)
        family, kind, _, _, sockaddr = infos[0]
        with socket.socket(family, kind) as probe:
            probe.connect(sockaddr)
            local: str = probe.getsockname()[0]
            return local
    except (OSError, IndexError):
        return None


def listener_addresses(host: str, ports: Mapping[str, int]) -> dict[str, str]:
    """``host:port`` per listener: where a front proxies to."""
    return {name: address(host, port) for name, port in ports.items()}


def listener_urls(host: str, ports: Mapping[str, int], overrides: tuple[str, ...] = ()) -> dict[str, str]:
    """The client URL per listener (``ws://host:8881``; clients add ``/gate`` or ``/chat``), with the listeners
    of ``server.advertise_urls`` (``LISTENER=URL``) set outright. Overrides of listeners not running are left out."""
    urls = {name: f"{SCHEMES.get(name, 'tcp')}://{address(host, port)}" for name, port in ports.items()}
    for item in overrides:
        name, _, url = item.partition("=")
        if name.strip() in urls:
            urls[name.strip()] = url.strip()
    return urls
