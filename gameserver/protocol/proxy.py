"""The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2): who the client is, as said by a
stream proxy in front of a raw TCP listener (nginx ``proxy_protocol on;``, HAProxy ``send-proxy``, cloud load
balancers).

A proxy that relays a TCP connection opens its own connection to the server, so the server sees the proxy's
address. With the PROXY protocol the proxy first writes one header naming the client's address and port, then
relays the client's bytes untouched:

- v1, text: ``PROXY TCP4 203.0.113.7 192.0.2.1 51234 8880\\r\\n`` (``TCP6``, or ``UNKNOWN`` and anything up to
  the CRLF); at most 107 bytes with the CRLF (section 2.1).
- v2, binary: a 12-byte signature, a version/command byte (``0x21`` PROXY, ``0x20`` LOCAL: the proxy's own
  health check), an address family/transport byte, a 2-byte big-endian length, then the addresses and
  optional TLVs, which are skipped (section 2.2).

Pure: no sockets, no clock. The connection (``gameserver/drivers/connection.py``) feeds the first bytes from a
trusted proxy to a :class:`ProxyHeaderDecoder` and hands what follows the header to the connection's framer.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass

from gameserver.errors import CloseCode, ProtocolViolation

V1_PREFIX = b"PROXY "
V1_MAX = 107  # bytes of the longest v1 line, CRLF included ("PROXY UNKNOWN" with two full IPv6 addresses)
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16  # signature, version/command, family/transport, length
DEFAULT_MAX_V2 = 2048  # bytes after the fixed part: addresses (216 at most) and TLVs (TLS details, cloud ids)

V2_VERSION = 2
LOCAL = 0x0
PROXY = 0x1
UNSPEC, INET, INET6, UNIX = 0x0, 0x1, 0x2, 0x3
STREAM, DGRAM = 0x1, 0x2
# The family/transport bytes a v2 header may carry; anything else is invalid (section 2.2).
V2_FAMILIES = {0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32}
V2_ADDRESS_SIZE = {UNSPEC: 0, INET: 12, INET6: 36, UNIX: 216}

_V1_TEXT = re.compile(rb"[\x20-\x7e]*")  # a v1 line is printable ASCII up to its CRLF
_V2_LENGTH = struct.Struct(">H")
_V2_INET = struct.Struct(">4s4sHH")
_V2_INET6 = struct.Struct(">16s16sHH")

Address = tuple[str, int]


class ProxyHeaderError(ProtocolViolation):
    """The first bytes of the connection are not a valid PROXY protocol header."""

    def __init__(self, message: str) -> None:
        super().__init__(CloseCode.PROTOCOL_ERROR, f"PROXY header: {message}")


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A parsed header.

    ``source`` is the client as the proxy saw it, ``(host, port)``; None when the header names no TCP client
    (v1 ``UNKNOWN``, v2 ``LOCAL``, an unspecified, UNIX or datagram address): the connection is then the proxy's
    own and keeps its peer. ``length`` is the header's size in bytes.
    """

    version: int
    source: Address | None
    destination: Address | None
    length: int


def parse(data: bytes, max_v2: int = DEFAULT_MAX_V2) -> ProxyHeader | None:
    """The header at the start of ``data``, None while ``data`` is a valid but incomplete start of one.

    Args:
        data: the first bytes of the connection (any number of them: what follows the header is not read).
        max_v2: the largest v2 length field accepted; a longer one is refused from the fixed part alone.

    Raises:
        ProxyHeaderError: ``data`` cannot be the start of a v1 or v2 header, or the header is invalid.
    """
    if data[:1] == V1_PREFIX[:1]:
        return _parse_v1(data)
    if data[:1] == V2_SIGNATURE[:1]:
        return _parse_v2(data, max_v2)
    if not data:
        return None
    raise ProxyHeaderError(f"expected 'PROXY ' (v1) or the v2 signature, got {bytes(data[:8])!r}")


def _parse_v1(data: bytes) -> ProxyHeader | None:
    start = bytes(data[: len(V1_PREFIX)])
    if start != V1_PREFIX[: len(start)]:
        raise ProxyHeaderError(f"expected 'PROXY ' (v1), got {start!r}")
    match = _V1_TEXT.match(data, 0, V1_MAX)
    assert match is not None  # the pattern matches the empty string
    end = match.end()
    if end == len(data) and end < V1_MAX:
        return None  # printable so far: the line goes on
    if data[end : end + 2] == b"\r\n" and end + 2 <= V1_MAX:
        return _v1_line(bytes(data[:end]).decode("ascii"), end + 2)
    if data[end : end + 1] == b"\r" and end + 1 == len(data) and end + 2 <= V1_MAX:
        return None  # the CR of the CRLF; the LF is still to come
    if end >= V1_MAX - 1:
        raise ProxyHeaderError(f"v1 line longer than {V1_MAX} bytes")
    raise ProxyHeaderError(f"unexpected byte {bytes(data[end : end + 1])!r} in the v1 line (expected CRLF)")


def _v1_line(line: str, length: int) -> ProxyHeader:
    parts = line.split(" ")
    protocol = parts[1]
    if protocol == "UNKNOWN":  # the proxy cannot say (section 2.1): the rest of the line is ignored
        return ProxyHeader(1, None, None, length)
    if protocol not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"expected TCP4, TCP6 or UNKNOWN, got {protocol[:16]!r}")
    if len(parts) != 6:
        raise ProxyHeaderError(f"expected 'PROXY {protocol} <source> <destination> <port> <port>'")
    version = 4 if protocol == "TCP4" else 6
    source = _v1_address(parts[2], parts[4], version)
    destination = _v1_address(parts[3], parts[5], version)
    return ProxyHeader(1, source, destination, length)


def _v1_address(host: str, port: str, version: int) -> Address:
    try:
        address = ipaddress.IPv4Address(host) if version == 4 else ipaddress.IPv6Address(host)
    except ValueError:
        raise ProxyHeaderError(f"{host[:45]!r} is not an IPv{version} address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        raise ProxyHeaderError(f"{host[:45]!r} has a scope id")
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 0xFFFF):
        raise ProxyHeaderError(f"{port[:8]!r} is not a port (0-65535)")
    return _host(address), int(port)


def _parse_v2(data: bytes, max_v2: int) -> ProxyHeader | None:
    start = bytes(data[: len(V2_SIGNATURE)])
    if start != V2_SIGNATURE[: len(start)]:
        raise ProxyHeaderError(f"expected the v2 signature, got {start!r}")
    if len(data) > 12:
        version, command = data[12] >> 4, data[12] & 0xF
        if version != V2_VERSION or command not in (LOCAL, PROXY):
            raise ProxyHeaderError(f"expected version 2 and LOCAL or PROXY, got 0x{data[12]:02x}")
    if len(data) > 13 and data[12] & 0xF == PROXY and data[13] not in V2_FAMILIES:  # LOCAL ignores it
        raise ProxyHeaderError(f"unknown address family and transport 0x{data[13]:02x}")
    if len(data) < V2_FIXED:
        return None
    (size,) = _V2_LENGTH.unpack_from(data, 14)
    if size > max_v2:
        raise ProxyHeaderError(f"v2 length {size} is over {max_v2} bytes")
    length = V2_FIXED + size
    if len(data) < length:
        return None
    if data[12] & 0xF == LOCAL:  # the proxy's own connection (a health check): its addresses are ignored
        return ProxyHeader(2, None, None, length)
    family, transport = data[13] >> 4, data[13] & 0xF
    if size < V2_ADDRESS_SIZE[family]:
        raise ProxyHeaderError(f"v2 length {size} is too short for its addresses ({V2_ADDRESS_SIZE[family]})")
    if transport != STREAM or family not in (INET, INET6):
        return ProxyHeader(2, None, None, length)  # no TCP client to speak of: the connection keeps its peer
    if family == INET:
        src, dst, sport, dport = _V2_INET.unpack_from(data, V2_FIXED)
        source = _host(ipaddress.IPv4Address(src)), sport
        destination = _host(ipaddress.IPv4Address(dst)), dport
    else:
        src, dst, sport, dport = _V2_INET6.unpack_from(data, V2_FIXED)
        source = _host(ipaddress.IPv6Address(src)), sport
        destination = _host(ipaddress.IPv6Address(dst)), dport
    return ProxyHeader(2, source, destination, length)


def _host(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(
            address.ipv4_mapped
        )  # ::ffff:203.0.113.7 is 203.0.113.7, as gameserver/drivers/forwarded.py reads it
    return str(address)


class ProxyHeaderDecoder:
    """Reads the header off the start of a stream, fed as it arrives.

    Args:
        max_v2: the largest v2 length field accepted (:func:`parse`). A v1 line is at most 107 bytes.
    """

    __slots__ = ("_buffer", "max_v2", "rest")

    def __init__(self, max_v2: int = DEFAULT_MAX_V2) -> None:
        self.max_v2 = max_v2
        self._buffer = b""
        self.rest = b""  # what followed the header in the read that completed it: the client's first bytes

    def feed(self, data: bytes) -> ProxyHeader | None:
        """Add received bytes; the header once complete (then :attr:`rest` holds the bytes after it), else None.

        Raises:
            ProxyHeaderError: the bytes so far cannot be, or are not, a valid header.
        """
        buffer = self._buffer + data if self._buffer else data
        header = parse(buffer, self.max_v2)
        if header is None:
            self._buffer = bytes(buffer)
            return None
        self._buffer = b""
        self.rest = bytes(buffer[header.length :])
        return header


def encode_v1(source: Address | None, destination: Address | None) -> bytes:
    """A v1 line: ``TCP4``/``TCP6`` from the addresses' kind, ``UNKNOWN`` when either is None."""
    if source is None or destination is None:
        return b"PROXY UNKNOWN\r\n"
    protocol = "TCP4" if ipaddress.ip_address(source[0]).version == 4 else "TCP6"
    return f"PROXY {protocol} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode()


def encode_v2(source: Address | None, destination: Address | None, tlvs: bytes = b"") -> bytes:
    """A v2 header over TCP; LOCAL (the proxy's own connection) when either address is None."""
    if source is None or destination is None:
        return V2_SIGNATURE + bytes([V2_VERSION << 4 | LOCAL, 0x00]) + _V2_LENGTH.pack(len(tlvs)) + tlvs
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    if src.version == 4:
        family, addresses = INET, _V2_INET.pack(src.packed, dst.packed, source[1], destination[1])
    else:
        family, addresses = INET6, _V2_INET6.pack(src.packed, dst.packed, source[1], destination[1])
    body = addresses + tlvs
    return V2_SIGNATURE + bytes([V2_VERSION << 4 | PROXY, family << 4 | STREAM]) + _V2_LENGTH.pack(len(body)) + body
