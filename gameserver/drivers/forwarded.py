"""The client's address behind a reverse proxy (seed 004: nginx in front): ``X-Forwarded-For``, trusted only
from the proxies configured in ``http.trusted_proxies``.

Pure: no sockets, no clock. The HTTP listener (``gameserver/drivers/http.py``) and the WebSocket handshake
(``gameserver/drivers/upgrade.py``) call :func:`client_address` with the TCP peer and the header's values.
``http.trusted_proxies`` is the one list of trusted proxies: the same :func:`is_trusted` decides whose PROXY
protocol header a raw TCP listener reads (``gameserver/drivers/connection.py``), and who is exempt from the per-address
connection caps.

Each proxy appends the address it received the request from, so the header reads "client, proxy1, proxy2"
and only its right end is known to be true: everything left of the first address that is not one of our
proxies was written by the client and could be anything. So the header is read from the right, skipping
our proxies, and the first other address is the client. A peer that is not a trusted proxy is the client
itself, whatever its headers say; a value that is not an IP address where one is needed falls back to the
peer (the request is then limited with the proxy's address, never with a value the client chose).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

HEADER = "X-Forwarded-For"


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``["127.0.0.1", "10.0.0.0/8", "::1"]`` as networks (a bare address is a network of one).

    Raises:
        ValueError: a value is neither an IP address nor a network in CIDR form (host bits set included).
    """
    return tuple(ipaddress.ip_network(value.strip()) for value in values)


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket's ::ffff:127.0.0.1 is 127.0.0.1
    return address


def _trusted(address: Address, proxies: Sequence[Network]) -> bool:
    return any(address in network for network in proxies)


def is_trusted(host: str, proxies: Sequence[Network]) -> bool:
    """Whether ``host`` (an address, no port) is one of the trusted proxies."""
    address = _address(host) if proxies else None
    return address is not None and _trusted(address, proxies)


def client_address(peer: str, forwarded_for: Iterable[str], proxies: Sequence[Network]) -> str:
    """The address to treat as the client's (per-address limits, logs).

    Args:
        peer: the TCP peer's host, without port.
        forwarded_for: every ``X-Forwarded-For`` header value of the request, in order (none: ``[]``).
        proxies: the trusted proxies (:func:`parse_networks`); empty trusts nobody.

    Returns:
        ``peer`` unless it is a trusted proxy; then the right-most header address that is not a trusted
        proxy, or the left-most one if all are. ``peer`` again when the header is missing or malformed.
    """
    if not proxies:
        return peer
    address = _address(peer)
    if address is None or not _trusted(address, proxies):
        return peer
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    client: Address | None = None
    for hop in reversed(hops):
        client = _address(hop)
        if client is None:
            return peer
        if not _trusted(client, proxies):
            break
    return peer if client is None else str(client)
