"""The client's address behind trusted proxies (gameserver/drivers/forwarded.py): pure, a table of cases."""

from __future__ import annotations

import pytest

from gameserver.config import load
from gameserver.drivers.forwarded import client_address, parse_networks
from gameserver.errors import ConfigError

PROXIES = parse_networks(["127.0.0.1", "10.0.0.0/8", "::1"])


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        pytest.param("203.0.113.7", ["198.51.100.1"], "203.0.113.7", id="peer not a proxy: header ignored"),
        pytest.param("127.0.0.1", [], "127.0.0.1", id="proxy without header"),
        pytest.param("127.0.0.1", ["198.51.100.1"], "198.51.100.1", id="one proxy"),
        pytest.param("127.0.0.1", ["198.51.100.1, 10.1.2.3"], "198.51.100.1", id="two proxies"),
        pytest.param("127.0.0.1", ["6.6.6.6, 198.51.100.1"], "198.51.100.1", id="client-written address on the left"),
        pytest.param("127.0.0.1", ["junk, 198.51.100.1"], "198.51.100.1", id="junk left of the client is not read"),
        pytest.param("127.0.0.1", ["198.51.100.1", "10.1.2.3"], "198.51.100.1", id="header given twice"),
        pytest.param("127.0.0.1", ["10.9.9.9, 10.1.2.3"], "10.9.9.9", id="all proxies: the left-most"),
        pytest.param("127.0.0.1", ["2001:db8::1"], "2001:db8::1", id="IPv6 client"),
        pytest.param("::1", ["2001:DB8:0::1"], "2001:db8::1", id="IPv6 proxy, address normalised"),
        pytest.param("::ffff:127.0.0.1", ["198.51.100.1"], "198.51.100.1", id="IPv4-mapped proxy"),
        pytest.param("127.0.0.1", ["::ffff:198.51.100.1"], "198.51.100.1", id="IPv4-mapped client"),
        pytest.param("127.0.0.1", ["not-an-ip"], "127.0.0.1", id="malformed"),
        pytest.param("127.0.0.1", ["198.51.100.1:4711"], "127.0.0.1", id="with a port: malformed"),
        pytest.param("127.0.0.1", ["198.51.100.1, junk"], "127.0.0.1", id="malformed right-most"),
        pytest.param("127.0.0.1", [""], "127.0.0.1", id="empty"),
        pytest.param("127.0.0.1", ["198.51.100.1,"], "127.0.0.1", id="trailing comma"),
        pytest.param("unix-socket", ["198.51.100.1"], "unix-socket", id="peer not an address"),
    ],
)
def test_client_address(peer: str, headers: list[str], expected: str) -> None:
    assert client_address(peer, headers, PROXIES) == expected


def test_nobody_trusted_by_default() -> None:
    assert client_address("127.0.0.1", ["198.51.100.1"], ()) == "127.0.0.1"
    assert load(None, env={}).http.trusted_proxies == ()


def test_setting_checked_at_start_up() -> None:
    config = load(None, env={"GAMESERVER_HTTP__TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"})
    assert parse_networks(config.http.trusted_proxies) == parse_networks(["127.0.0.1/32", "10.0.0.0/8"])
    with pytest.raises(ConfigError, match=r"http.trusted_proxies: 'nginx' is not an IP address or network"):
        load(None, env={}, overrides={"http.trusted_proxies": ["nginx"]})
    with pytest.raises(ConfigError, match="10.0.0.1/8"):  # host bits set: a typo, not a network
        load(None, env={}, overrides={"http.trusted_proxies": ["10.0.0.1/8"]})
