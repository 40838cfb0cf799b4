"""Logging set-up: text or JSON lines to stderr or a file, optionally also to syslog, at the configured level.

Every line logged while a gate request is handled carries that request's correlation id (``cid``, set by the
dispatcher in :data:`CORRELATION_ID`): text lines end with ``cid=<id>``, JSON lines have a ``cid`` field.
The per-request lines (``log.requests``) also carry ``fn``, ``uid``, ``ms`` and ``outcome`` as JSON fields.
``log.syslog`` forwards the same lines to a syslog daemon (seed 000: rsyslog collects every instance's logs
where developers can read them without access to the server).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import socket
import sys
import time
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from gameserver.config import LogConfig
from gameserver.errors import ConfigError

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_SYSLOG_FORMAT = "%(levelname)s %(name)s: %(message)s"  # syslog stamps the time and host itself
SYSLOG_PORT = 514

CORRELATION_ID: ContextVar[str | tuple[str, int, int | None] | None] = ContextVar("correlation_id", default=None)
"""The correlation id of the gate request being handled (``node-session-id``). The dispatcher sets its parts as
a tuple, so a request that logs nothing never formats it; the log filter joins them."""

FIELDS = ("cid", "fn", "uid", "ms", "outcome")
"""Structured fields a record may carry (``extra={...}``); JSON lines show them as keys."""


class CorrelationFilter(logging.Filter):
    """Stamps ``record.cid`` with the current request's correlation id unless the record brings its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "cid", None) is None:
            cid = CORRELATION_ID.get()
            record.cid = "-".join(map(str, cid)) if type(cid) is tuple else cid
        return True


class TextFormatter(logging.Formatter):
    """The text line, ending with ``cid=<id>`` when the record has one its message does not already name."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        cid = getattr(record, "cid", None)
        if cid and cid not in record.message:
            text += f" cid={cid}"
        return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def text_formatter(fmt: str = _TEXT_FORMAT) -> logging.Formatter:
    formatter = TextFormatter(fmt)
    formatter.converter = time.gmtime
    return formatter


def syslog_handler(target: str, facility: str, ident: str) -> logging.handlers.SysLogHandler:
    """A handler sending to ``udp://host[:port]`` or to a unix datagram socket (``/dev/log``).

    A unix socket that is not there yet is not an error (like ``openlog(3)``): the handler connects when it logs.

    Raises:
        ConfigError: the target is neither.
    """
    address: str | tuple[str, int]
    if target.startswith("udp://"):
        url = urlsplit(target)
        if not url.hostname:
            raise ConfigError(f"log.syslog: {target!r} has no host (expected udp://HOST[:PORT])")
        address = (url.hostname, url.port or SYSLOG_PORT)
    elif target.startswith(("/", "unix://")):
        address = target.removeprefix("unix://")
    else:
        raise ConfigError(f"log.syslog: expected udp://HOST[:PORT] or a unix socket path, got {target!r}")
    try:
        handler = logging.handlers.SysLogHandler(
            address=address,
            facility=logging.handlers.SysLogHandler.facility_names[facility],
            socktype=socket.SOCK_DGRAM,
        )
    except OSError as exc:
        raise ConfigError(f"log.syslog: cannot open {target}: {exc}") from None
    handler.ident = ident  # the RFC 3164 tag: "gameserver[1234]: "
    return handler


def build_handlers(config: LogConfig, *, ident: str = "gameserver") -> list[logging.Handler]:
    """The handlers ``config`` asks for, formatted and stamping correlation ids; the caller attaches them."""
    handlers: list[logging.Handler] = []
    main: logging.Handler
    if config.file:
        main = logging.FileHandler(config.file, encoding="utf-8")
    else:
        main = logging.StreamHandler(sys.stderr)
    main.setFormatter(JsonFormatter() if config.format == "json" else text_formatter())
    handlers.append(main)
    if config.syslog:
        syslog = syslog_handler(config.syslog, config.syslog_facility, f"{ident}[{os.getpid()}]: ")
        syslog.setFormatter(JsonFormatter() if config.format == "json" else text_formatter(_SYSLOG_FORMAT))
        handlers.append(syslog)
    for handler in handlers:
        handler.addFilter(CorrelationFilter())
    return handlers


def setup_logging(config: LogConfig, *, ident: str = "gameserver") -> None:
    """Replace the root logger's handlers with those of ``config`` (``ident`` tags syslog lines)."""
    handlers = build_handlers(config, ident=ident)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(config.level.upper())
    # websockets logs every handshake failure at info; ours already says what matters.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
