"""The node registry's pure parts: an entry as Redis hash fields and back, which entries are live, the pick, the
advertised addresses and URLs, the settings (gameserver/features/nodes/record.py, advertise.py; docs/operations.md)."""

from __future__ import annotations

import random
import socket
from dataclasses import replace

import pytest

from gameserver.config import Config, load
from gameserver.errors import ConfigError
from gameserver.features.nodes.advertise import advertised_host, listener_addresses, listener_urls
from gameserver.features.nodes.command import main as command_main
from gameserver.features.nodes.command import table
from gameserver.features.nodes.record import NodeRecord, address, least_loaded, live

RECORD = NodeRecord(
    node="n1",
    instance="abc123",
    roles=("gate", "worker"),
    version="0.1.0",
    host="box1",
    pid=4242,
    started=1_700_000_000_000,
    addresses={"ws": "10.0.0.5:8881", "http": "10.0.0.5:8000"},
    urls={"ws": "wss://play.example.com", "http": "http://10.0.0.5:8000"},
    connections={"gate-tcp": 3, "ws": 4, "http": 50},
    inflight=2,
    players=5,
)


def test_fields_are_strings_a_lua_script_reads_with_one_hget() -> None:
    fields = RECORD.to_fields()
    assert all(isinstance(value, str) for value in fields.values())
    assert fields["addr.ws"] == "10.0.0.5:8881"
    assert fields["url.ws"] == "wss://play.example.com"
    assert fields["conn.gate-tcp"] == "3"
    assert (fields["node"], fields["roles"], fields["pid"], fields["players"]) == ("n1", "gate,worker", "4242", "5")
    assert "heartbeat" not in fields and "expires" not in fields  # the registry writes those, on Redis's clock


def test_fields_round_trip() -> None:
    fields = {**RECORD.to_fields(), "heartbeat": "1700000001000", "expires": "1700000007000"}
    assert NodeRecord.from_fields(fields) == replace(RECORD, heartbeat=1_700_000_001_000, expires=1_700_000_007_000)


@pytest.mark.parametrize(
    "fields",
    [
        {},  # expired between reading the set and the hash
        {"node": "n1"},  # no instance: not written by a heartbeat
        {**RECORD.to_fields(), "pid": "x"},
        {**RECORD.to_fields(), "conn.ws": "many"},
    ],
)
def test_what_is_not_an_entry_is_skipped(fields: dict[str, str]) -> None:
    assert NodeRecord.from_fields(fields) is None


def test_json_has_everything_and_public_only_where_to_connect() -> None:
    body = RECORD.to_json()
    assert body["addresses"]["ws"] == "10.0.0.5:8881"
    assert body["load"] == {"connections": {"gate-tcp": 3, "ws": 4, "http": 50}, "inflight": 2, "players": 5}
    assert RECORD.public() == {"node": "n1", "roles": ["gate", "worker"], "urls": dict(RECORD.urls)}


def test_load_is_the_players_connections_not_http() -> None:
    assert RECORD.load == 7


def test_ipv6_addresses_are_bracketed() -> None:
    assert address("::1", 8881) == "[::1]:8881"
    assert address("10.0.0.5", 8881) == "10.0.0.5:8881"


def test_an_entry_is_live_until_its_own_expiry() -> None:
    # Scores are expiry times: entries with different TTLs mix, and the reader needs none of them.
    scored = [("old", 999.0), ("edge", 1000.0), ("fresh", 1001.0), ("long-ttl", 60_000.0)]
    assert live(scored, 1000) == ["fresh", "long-ttl"]
    assert live(scored, 0) == ["old", "edge", "fresh", "long-ttl"]
    assert live([], 1000) == []


def test_least_loaded() -> None:
    busy = replace(RECORD, node="busy", connections={"ws": 10})
    idle = replace(RECORD, node="idle", connections={"ws": 1, "http": 500})  # HTTP scrapes are not players
    assert least_loaded([busy, idle]) == idle
    assert least_loaded([]) is None


def test_least_loaded_breaks_ties_at_random() -> None:
    a, b = replace(RECORD, node="a", connections={}), replace(RECORD, node="b", connections={})
    rng = random.Random(7)
    picks = {least_loaded([a, b], rng).node for _ in range(50)}  # type: ignore[union-attr]
    assert picks == {"a", "b"}


PORTS = {"gate-tcp": 8880, "ws": 8881, "chat-tcp": 8890, "http": 8000}


def test_addresses_and_urls_per_listener() -> None:
    assert listener_addresses("10.0.0.5", PORTS)["ws"] == "10.0.0.5:8881"
    assert listener_urls("10.0.0.5", PORTS) == {
        "gate-tcp": "tcp://10.0.0.5:8880",
        "ws": "ws://10.0.0.5:8881",
        "chat-tcp": "tcp://10.0.0.5:8890",
        "http": "http://10.0.0.5:8000",
    }


def test_advertised_urls_override_their_listener_only() -> None:
    urls = listener_urls("10.0.0.5", {"ws": 8881, "http": 8000}, ("ws=wss://play.example.com", "chat-tcp=tcp://x:1"))
    assert urls == {"ws": "wss://play.example.com", "http": "http://10.0.0.5:8000"}  # no chat listener: no chat URL


def config(**overrides: object) -> Config:
    return load(None, env={}, overrides=overrides)


async def test_advertised_host() -> None:
    assert await advertised_host(config(**{"server.host": "10.0.0.5"})) == "10.0.0.5"
    assert await advertised_host(config(**{"server.advertise_host": "game1.lan"})) == "game1.lan"
    # Every interface names no host: the address toward Redis, or loopback with the in-process store.
    assert await advertised_host(config(**{"server.host": "0.0.0.0"})) == "127.0.0.1"
    toward_redis = config(**{"server.host": "0.0.0.0", "redis.url": "redis://127.0.0.2:6379/0"})
    assert await advertised_host(toward_redis) == "127.0.0.1"  # the kernel's source address for 127.0.0.2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"server.advertise_urls": ["wss://x"]}, "server.advertise_urls: 'wss://x' is not LISTENER=URL"),
        ({"server.advertise_urls": ["gate=ws://x"]}, "with LISTENER one of gate-tcp, ws, chat-tcp, http"),
        ({"server.advertise_urls": ["ws=play.example.com"]}, "is not LISTENER=URL"),
        ({"nodes.heartbeat": 2.0, "nodes.ttl": 3.0}, "nodes.ttl: must be at least twice nodes.heartbeat (2s)"),
        ({"nodes.heartbeat": 0.01}, "nodes.heartbeat: must be at least 0.05"),
    ],
)
def test_bad_settings(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config(**overrides)


def test_defaults() -> None:
    nodes = config().nodes
    assert (nodes.heartbeat, nodes.ttl, nodes.admin_key) == (2.0, 6.0, "")


def test_the_cli_table_lists_each_node_with_its_addresses() -> None:
    lines = table([RECORD, replace(RECORD, node="n2-longer-name", addresses={})]).splitlines()
    assert lines[0].split()[:2] == ["NODE", "ROLES"]
    assert lines[1].split()[0] == "n1" and "ws=10.0.0.5:8881" in lines[1] and "2023-11-14 22:13:20" in lines[1]
    assert lines[2].split()[:2] == ["n2-longer-name", "gate,worker"]
    assert lines[1].index("gate,worker") == lines[2].index("gate,worker")  # columns line up


def test_the_cli_needs_a_shared_redis(capsys: pytest.CaptureFixture[str]) -> None:
    assert command_main(config()) == 1
    assert "redis.url is not set" in capsys.readouterr().err


def test_the_cli_says_when_redis_cannot_be_read(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed again before the command connects: refused
    assert command_main(config(**{"redis.url": f"redis://127.0.0.1:{port}/0"})) == 1
    assert "cannot read the registry from Redis: ConnectionError" in capsys.readouterr().err
