"""Log lines: correlation ids in text and JSON, and forwarding to syslog over UDP and a unix socket."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gameserver.config import LogConfig
from gameserver.errors import ConfigError
from gameserver.logs import (
    CORRELATION_ID,
    CorrelationFilter,
    JsonFormatter,
    build_handlers,
    syslog_handler,
    text_formatter,
)


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("game.mod", logging.INFO, __file__, 1, msg, args, None)
    rec.__dict__.update(extra)
    CorrelationFilter().filter(rec)
    return rec


def test_text_lines_end_with_the_requests_correlation_id() -> None:
    formatter = text_formatter()
    assert formatter.format(record("no request")).endswith("game.mod: no request")
    token = CORRELATION_ID.set("node-7-3")
    try:
        assert formatter.format(record("in a handler")).endswith("game.mod: in a handler cid=node-7-3")
        # A message that names the id already is not repeated.
        assert formatter.format(record("error (correlation id node-7-3)")).endswith("(correlation id node-7-3)")
    finally:
        CORRELATION_ID.reset(token)


def test_json_lines_carry_the_request_fields() -> None:
    line = JsonFormatter().format(
        record("fn=%s", "sys.echo", cid="n-1-2", fn="sys.echo", uid=None, ms=0.5, outcome="ok")
    )
    entry = json.loads(line)
    assert entry["msg"] == "fn=sys.echo"
    assert {k: entry[k] for k in ("cid", "fn", "ms", "outcome", "level", "logger")} == {
        "cid": "n-1-2",
        "fn": "sys.echo",
        "ms": 0.5,
        "outcome": "ok",
        "level": "info",
        "logger": "game.mod",
    }
    assert "uid" not in entry  # None fields are left out


@pytest.mark.parametrize("target", ["tcp://127.0.0.1:514", "127.0.0.1:514", "udp://:514"])
def test_unsupported_syslog_targets_are_config_errors(target: str) -> None:
    with pytest.raises(ConfigError, match="log.syslog"):
        syslog_handler(target, "user", "gameserver: ")


def test_a_unix_socket_not_there_yet_does_not_stop_the_server(tmp_path: Path) -> None:
    # Like openlog(3): the syslog daemon may start later; the handler connects when it logs.
    handler = syslog_handler(str(tmp_path / "not-yet"), "user", "gameserver: ")
    handler.close()


@pytest.fixture
def udp_listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    yield sock
    sock.close()


def emit(handlers: list[logging.Handler], message: str, level: int = logging.WARNING) -> None:
    logger = logging.getLogger("gameserver.test-syslog")
    rec = logger.makeRecord(logger.name, level, __file__, 1, message, (), None)
    for handler in handlers:
        if handler.filter(rec):
            handler.handle(rec)
    for handler in handlers:
        handler.close()


def test_syslog_over_udp_in_text(udp_listener: socket.socket) -> None:
    port = udp_listener.getsockname()[1]
    config = LogConfig(syslog=f"udp://127.0.0.1:{port}", syslog_facility="local5")
    handlers = build_handlers(config, ident="gameserver-dev1")
    assert len(handlers) == 2
    token = CORRELATION_ID.set("dev1-4-9")
    try:
        emit(handlers[1:], "disk almost full")
    finally:
        CORRELATION_ID.reset(token)
    data = udp_listener.recv(65536).decode()
    priority = 21 * 8 + 4  # local5, warning (RFC 3164)
    tag = f"<{priority}>gameserver-dev1[{os.getpid()}]: "
    assert data == tag + "WARNING gameserver.test-syslog: disk almost full cid=dev1-4-9\x00"


def test_syslog_in_json(udp_listener: socket.socket) -> None:
    port = udp_listener.getsockname()[1]
    handlers = build_handlers(LogConfig(syslog=f"udp://127.0.0.1:{port}", format="json"))
    emit(handlers[1:], "hello", logging.INFO)
    data = udp_listener.recv(65536).decode()
    prefix = f"<14>gameserver[{os.getpid()}]: "
    assert data.startswith(prefix)
    assert json.loads(data[len(prefix) :].rstrip("\x00"))["msg"] == "hello"


def test_syslog_over_a_unix_datagram_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5.0)
        handlers = build_handlers(LogConfig(syslog=path))
        emit(handlers[1:], "via /dev/log")
        assert sock.recv(65536).decode().endswith("WARNING gameserver.test-syslog: via /dev/log\x00")
