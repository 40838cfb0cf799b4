"""The PROXY protocol header, v1 and v2 (gameserver/protocol/proxy.py; HAProxy's proxy-protocol.txt)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gameserver.errors import CloseCode, ProtocolViolation
from gameserver.protocol.proxy import (
    DEFAULT_MAX_V2,
    V1_MAX,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderDecoder,
    ProxyHeaderError,
    encode_v1,
    encode_v2,
    parse,
)

# The examples of the specification, byte for byte (section 2.1 and the layout of 2.2).
V1_TCP4 = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
V1_TCP6 = b"PROXY TCP6 2001:db8::1 2001:db8::11 56324 443\r\n"
V1_LONGEST = b"PROXY UNKNOWN " + b":".join([b"ffff"] * 8) + b" " + b":".join([b"ffff"] * 8) + b" 65535 65535\r\n"
V2_TCP4 = (
    V2_SIGNATURE
    + bytes([0x21, 0x11, 0x00, 0x0C])  # v2 PROXY, AF_INET STREAM, 12 bytes of addresses
    + bytes([203, 0, 113, 7, 192, 0, 2, 1])
    + (51234).to_bytes(2, "big")
    + (8880).to_bytes(2, "big")
)
V2_LOCAL = V2_SIGNATURE + bytes([0x20, 0x00, 0x00, 0x00])  # HAProxy's health checks


def header(
    version: int, source: tuple[str, int] | None, destination: tuple[str, int] | None, data: bytes
) -> ProxyHeader:
    return ProxyHeader(version, source, destination, len(data))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (V1_TCP4, header(1, ("192.168.0.1", 56324), ("192.168.0.11", 443), V1_TCP4)),
        (V1_TCP6, header(1, ("2001:db8::1", 56324), ("2001:db8::11", 443), V1_TCP6)),
        (b"PROXY UNKNOWN\r\n", header(1, None, None, b"PROXY UNKNOWN\r\n")),
        (V1_LONGEST, header(1, None, None, V1_LONGEST)),  # UNKNOWN: the rest of the line is ignored
        (V2_TCP4, header(2, ("203.0.113.7", 51234), ("192.0.2.1", 8880), V2_TCP4)),
        (V2_LOCAL, header(2, None, None, V2_LOCAL)),
    ],
)
def test_the_specification_examples(data: bytes, expected: ProxyHeader) -> None:
    assert parse(data) == expected


def test_the_longest_v1_line_is_107_bytes() -> None:
    assert len(V1_LONGEST) == V1_MAX == 107
    assert parse(V1_LONGEST) is not None
    with pytest.raises(ProxyHeaderError, match="longer than 107 bytes"):
        parse(V1_LONGEST[:-2] + b"f\r\n")
    with pytest.raises(ProxyHeaderError, match="longer than 107 bytes"):
        parse(b"PROXY UNKNOWN " + b"x" * 200)  # no CRLF within 107 bytes: refused without waiting for more


def test_an_ipv4_mapped_address_is_the_ipv4_address() -> None:
    # As gameserver/drivers/forwarded.py reads one: the per-address limits see one client, however it is written.
    parsed = parse(b"PROXY TCP6 ::ffff:203.0.113.7 ::1 1 2\r\n")
    assert parsed is not None and parsed.source == ("203.0.113.7", 1)
    parsed = parse(encode_v2(("::ffff:203.0.113.7", 1), ("::1", 2)))
    assert parsed is not None and parsed.source == ("203.0.113.7", 1)


@pytest.mark.parametrize(
    ("family", "size", "expected_source"),
    [
        (0x21, 36, ("2001:db8::1", 1)),  # AF_INET6 STREAM
        (0x12, 12, None),  # AF_INET DGRAM: no TCP client
        (0x31, 216, None),  # AF_UNIX STREAM: no address to count
        (0x00, 0, None),  # AF_UNSPEC: the proxy cannot say
    ],
)
def test_v2_families(family: int, size: int, expected_source: tuple[str, int] | None) -> None:
    addresses = encode_v2(("2001:db8::1", 1), ("2001:db8::2", 2))[16:] if family == 0x21 else bytes(size)
    data = V2_SIGNATURE + bytes([0x21, family]) + size.to_bytes(2, "big") + addresses
    parsed = parse(data)
    assert parsed is not None and parsed.source == expected_source and parsed.length == 16 + size


def test_v2_tlvs_are_skipped() -> None:
    tlvs = bytes([0x04, 0x00, 0x03]) + b"abc" + bytes([0xEA, 0x00, 0x01, 0x01])  # NOOP, a cloud's own type
    data = encode_v2(("198.51.100.2", 40000), ("10.0.0.1", 8890), tlvs)
    parsed = parse(data + b"LOGIN")
    assert parsed == ProxyHeader(2, ("198.51.100.2", 40000), ("10.0.0.1", 8890), len(data))


def test_v2_local_ignores_its_family() -> None:
    assert parse(V2_SIGNATURE + bytes([0x20, 0xFF, 0x00, 0x02, 0x00, 0x00])) == ProxyHeader(2, None, None, 18)


def test_a_v2_length_over_the_bound_is_refused_from_the_fixed_part() -> None:
    fixed = V2_SIGNATURE + bytes([0x21, 0x11]) + (DEFAULT_MAX_V2 + 1).to_bytes(2, "big")
    with pytest.raises(ProxyHeaderError, match=f"v2 length {DEFAULT_MAX_V2 + 1} is over {DEFAULT_MAX_V2} bytes"):
        parse(fixed)
    assert parse(fixed, max_v2=DEFAULT_MAX_V2 + 1) is None  # within a larger bound: waits for the rest


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GET / HTTP/1.1\r\n", "expected 'PROXY ' (v1) or the v2 signature, got b'GET / HT'"),
        (b"\x00\x00\x00\x10", "expected 'PROXY ' (v1) or the v2 signature"),  # a gate frame without the header
        (b"LOGIN     abc\r\n", "expected 'PROXY ' (v1) or the v2 signature"),  # a chat line without it
        (b"PROXY\r\n", "expected 'PROXY ' (v1), got b'PROXY\\r'"),
        (b"PROXY TCP5 1.2.3.4 1.2.3.5 1 2\r\n", "expected TCP4, TCP6 or UNKNOWN, got 'TCP5'"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.5 1\r\n", "expected 'PROXY TCP4 <source> <destination> <port> <port>'"),
        (b"PROXY TCP4 1.2.3.4  1.2.3.5 1 2\r\n", "expected 'PROXY TCP4"),  # two spaces
        (b"PROXY TCP4 1.2.3.4 1.2.3.5 1 2 \r\n", "expected 'PROXY TCP4"),
        (b"PROXY TCP4 1.2.3.256 1.2.3.5 1 2\r\n", "'1.2.3.256' is not an IPv4 address"),
        (b"PROXY TCP4 01.2.3.4 1.2.3.5 1 2\r\n", "'01.2.3.4' is not an IPv4 address"),
        (b"PROXY TCP4 ::1 ::2 1 2\r\n", "'::1' is not an IPv4 address"),
        (b"PROXY TCP6 1.2.3.4 1.2.3.5 1 2\r\n", "'1.2.3.4' is not an IPv6 address"),
        (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "'fe80::1%eth0' has a scope id"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.5 65536 2\r\n", "'65536' is not a port"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.5 +80 2\r\n", "'+80' is not a port"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.5 -1 2\r\n", "'-1' is not a port"),
        (b"PROXY TCP4 1.2.3.4 1.2.3.5 1 2\n", "unexpected byte b'\\n' in the v1 line"),  # a bare LF
        (b"PROXY TCP4 1.2.3.4 1.2.3.5 1 2\rX", "unexpected byte b'\\r'"),  # a CR without its LF
        (b"PROXY TCP4 1.2.3.\xc3\xa9 1.2.3.5 1 2\r\n", "unexpected byte b'\\xc3'"),
        (b"PROXY TCP4 1.2.3.4\x00", "unexpected byte b'\\x00'"),
        (V2_SIGNATURE[:5] + b"X", "expected the v2 signature"),
        (V2_SIGNATURE + bytes([0x11, 0x11, 0, 12]), "expected version 2 and LOCAL or PROXY, got 0x11"),
        (V2_SIGNATURE + bytes([0x22]), "expected version 2 and LOCAL or PROXY, got 0x22"),
        (V2_SIGNATURE + bytes([0x21, 0x41]), "unknown address family and transport 0x41"),
        (V2_SIGNATURE + bytes([0x21, 0x13]), "unknown address family and transport 0x13"),
        (V2_SIGNATURE + bytes([0x21, 0x11, 0, 11]) + bytes(11), "v2 length 11 is too short for its addresses (12)"),
        (V2_SIGNATURE + bytes([0x21, 0x21, 0, 12]) + bytes(12), "v2 length 12 is too short for its addresses (36)"),
    ],
)
def test_malformed_headers(data: bytes, message: str) -> None:
    with pytest.raises(ProxyHeaderError, match="^PROXY header: " + re.escape(message)) as raised:
        parse(data)
    assert isinstance(raised.value, ProtocolViolation) and raised.value.close_code == CloseCode.PROTOCOL_ERROR


@pytest.mark.parametrize("data", [V1_TCP4, V1_TCP6, V1_LONGEST, V2_TCP4, V2_LOCAL])
def test_an_incomplete_header_waits_for_more(data: bytes) -> None:
    for end in range(len(data)):
        assert parse(data[:end]) is None, end


@pytest.mark.parametrize("data", [V1_TCP4, V2_TCP4])
def test_the_decoder_splits_at_every_offset_and_keeps_what_follows(data: bytes) -> None:
    stream = data + b"\x00\x00\x00\x03abc"
    expected = parse(data)
    for offset in range(1, len(stream)):
        decoder = ProxyHeaderDecoder()
        first = decoder.feed(stream[:offset])
        if offset < len(data):
            assert first is None
            assert decoder.feed(stream[offset:]) == expected
        else:
            assert first == expected
            assert decoder.rest + stream[offset:] == stream[len(data) :]
            continue
        assert decoder.rest == stream[len(data) :]


def test_the_decoder_fed_one_byte_at_a_time() -> None:
    decoder = ProxyHeaderDecoder()
    results = [decoder.feed(bytes([byte])) for byte in V1_TCP6]
    assert results[:-1] == [None] * (len(V1_TCP6) - 1)
    assert results[-1] == parse(V1_TCP6) and decoder.rest == b""


def test_encoders() -> None:
    assert encode_v1(("192.168.0.1", 56324), ("192.168.0.11", 443)) == V1_TCP4
    assert encode_v1(("2001:db8::1", 56324), ("2001:db8::11", 443)) == V1_TCP6
    assert encode_v1(None, None) == b"PROXY UNKNOWN\r\n"
    assert encode_v2(("203.0.113.7", 51234), ("192.0.2.1", 8880)) == V2_TCP4
    assert encode_v2(None, None) == V2_LOCAL


ports = st.integers(0, 65535)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).filter(lambda a: a.ipv4_mapped is None).map(str)
endpoints = st.one_of(st.tuples(ipv4, ports, ipv4, ports), st.tuples(ipv6, ports, ipv6, ports))


@given(endpoints, st.sampled_from([encode_v1, encode_v2]), st.binary(max_size=64), st.data())
def test_any_header_round_trips_in_any_chunks(
    endpoint: tuple[str, int, str, int], encode: Callable[..., bytes], tail: bytes, data: st.DataObject
) -> None:
    source, destination = (endpoint[0], endpoint[1]), (endpoint[2], endpoint[3])
    encoded = encode(source, destination)
    stream = encoded + tail
    cuts = sorted(data.draw(st.lists(st.integers(1, len(stream)), max_size=4)))
    decoder = ProxyHeaderDecoder()
    found = None
    start = 0
    for cut in [*cuts, len(stream)]:
        if found is None:
            found = decoder.feed(stream[start:cut])
            rest = decoder.rest
        else:
            rest += stream[start:cut]
        start = cut
    assert found == ProxyHeader(1 if encode is encode_v1 else 2, source, destination, len(encoded))
    assert rest == tail


# Random bytes, and random bytes after each kind of valid start: never anything but ProxyHeaderError.
starts = st.sampled_from([b"", b"PROXY ", b"PROXY TCP4 ", b"PROXY TCP6 ", b"PROXY UNKNOWN", V2_SIGNATURE])


@settings(max_examples=500)
@given(starts, st.binary(max_size=300))
def test_random_bytes_raise_nothing_but_the_parsers_error(start: bytes, noise: bytes) -> None:
    data = start + noise
    try:
        parsed = parse(data)
    except ProxyHeaderError:
        return
    if parsed is not None:
        assert 0 < parsed.length <= len(data)
        assert parsed.length <= V1_MAX if data[:1] == b"P" else parsed.length <= 16 + DEFAULT_MAX_V2


@settings(max_examples=300)
@given(st.binary(max_size=40), st.integers(0, 3), st.binary(max_size=300))
def test_random_v2_fields_raise_nothing_but_the_parsers_error(fields: bytes, size_high: int, noise: bytes) -> None:
    data = V2_SIGNATURE + fields[:2] + bytes([size_high]) + fields[2:] + noise
    try:
        parse(data, max_v2=1024)
    except ProxyHeaderError:
        pass
