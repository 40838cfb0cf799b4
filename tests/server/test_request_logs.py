"""``log.requests``: one line per request carrying its correlation id, as do the handler's own lines, to syslog."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gameserver.config import LogConfig
from gameserver.logs import build_handlers
from tests.clients import WsClient


@pytest.fixture
def syslog_socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


async def next_line(sock: socket.socket, logger: str) -> dict[str, Any]:
    """The next JSON syslog line from ``logger`` (others, e.g. connection notices, are skipped)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(5):
        while True:
            data = (await loop.sock_recv(sock, 65536)).decode().rstrip("\x00")
            entry: dict[str, Any] = json.loads(data.split("]: ", 1)[1])
            if entry["logger"] == logger:
                return entry


async def test_request_lines_and_handler_lines_share_the_correlation_id(
    app_factory: Callable[..., Any],
    tmp_path: Path,
    syslog_socket: socket.socket,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = f"logs{uuid.uuid4().hex[:8]}"
    package = tmp_path / "mods" / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "from gameserver.dispatch.registry import handler\n\n"
        "async def shout(text: str, *, log, **_):\n    log.warning('shouting %s', text)\n    return text.upper()\n\n"
        "HANDLERS = {'shout': handler(shout, login=False)}\n"
    )
    port = syslog_socket.getsockname()[1]
    handlers = build_handlers(LogConfig(format="json", syslog=f"udp://127.0.0.1:{port}"))[1:]
    caplog.set_level(logging.INFO)
    root = logging.getLogger()
    for handler in handlers:
        root.addHandler(handler)
    try:
        app = await app_factory(log={"requests": True}, modules={"paths": [str(tmp_path / "mods")]})
        client = await WsClient.open(app.ports["ws"])

        assert (await client.call(f"{name}.shout", {"text": "hi"}))["data"] == "HI"
        own = await next_line(syslog_socket, f"gameserver_modules.{name}")
        access = await next_line(syslog_socket, "gameserver.access")
        assert own["msg"] == "shouting hi"
        assert own["cid"] == access["cid"]
        assert access["cid"].startswith("test-") and access["cid"].endswith("-1")
        assert (access["fn"], access["outcome"]) == (f"{name}.shout", "ok")
        assert access["msg"].startswith(f"fn={name}.shout uid=None ms=")

        assert (await client.call("no.such"))["error"]["code"] == "unknown_function"
        failed = await next_line(syslog_socket, "gameserver.access")
        assert (failed["fn"], failed["outcome"]) == ("(unknown)", "unknown_function")
        assert failed["cid"].endswith("-2") and failed["cid"].rsplit("-", 1)[0] == access["cid"].rsplit("-", 1)[0]
        await client.close()
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
