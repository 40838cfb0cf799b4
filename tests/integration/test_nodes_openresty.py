"""The shipped openresty example (deploy/openresty/) run for real with Debian's nginx and Lua module: a player's
`/ws?node=<id>` reaches that node's gate through the node registry in Redis, and a node that left is 404
(docs/operations.md, "Node registry")."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from gameserver.app import App
from gameserver.config import Config
from tests.clients import WsClient
from tests.conftest import IN_CI
from tests.integration.private_services import free_port

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "openresty"
NGINX = "/usr/sbin/nginx"
MODULES = ("/usr/lib/nginx/modules/ndk_http_module.so", "/usr/lib/nginx/modules/ngx_http_lua_module.so")
REDIS_LUA = ("/usr/share/lua/5.1/nginx/redis.lua", "/usr/share/lua/5.1/resty/redis.lua")
START_TIMEOUT = 10.0


def require_nginx_lua() -> None:
    if os.path.exists(NGINX) and all(map(os.path.exists, MODULES)) and any(map(os.path.exists, REDIS_LUA)):
        return
    message = "nginx with the Lua module and lua-resty-redis is not installed (apt-get install nginx "
    message += "libnginx-mod-http-lua lua-nginx-redis; scripts/services does in CI)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def site(port: int, redis_url: str, prefix: str) -> str:
    """The shipped site, pointed at this test's port, Redis and prefix (each setting replaced exactly once)."""
    text = (DEPLOY / "gameserver-nodes.conf").read_text()
    redis = urlsplit(redis_url)
    db = int(redis.path.strip("/") or 0)
    for old, new in [
        ("listen 8080;", f"listen 127.0.0.1:{port};"),
        ('"/etc/nginx/gameserver/?.lua;;"', f'"{DEPLOY}/?.lua;;"'),
        (
            'route({host = "127.0.0.1", port = 6379, prefix = "gs:"})',
            f'route({{host = "{redis.hostname}", port = {redis.port or 6379}, db = {db}, prefix = "{prefix}"}})',
        ),
    ]:
        assert text.count(old) == 1, f"deploy/openresty/gameserver-nodes.conf no longer has {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture
async def front(tmp_path: Path, redis_url: str, redis_prefix: str) -> AsyncIterator[int]:
    """nginx in the foreground, one process, in a temp dir; killed by PID at teardown. Its port."""
    require_nginx_lua()
    port = free_port()
    root = tmp_path / "nginx"
    root.mkdir()
    (root / "site.conf").write_text(site(port, redis_url, redis_prefix))
    temp = " ".join(f"{kind}_temp_path {root / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (root / "nginx.conf").write_text(
        "".join(f"load_module {module};\n" for module in MODULES)
        + f"daemon off;\nmaster_process off;\npid {root / 'nginx.pid'};\nerror_log {root / 'error.log'} info;\n"
        + f"events {{}}\nhttp {{\n access_log off;\n {temp}\n include {root / 'site.conf'};\n}}\n"
    )
    process = subprocess.Popen([NGINX, "-p", str(root), "-c", str(root / "nginx.conf")], stderr=subprocess.PIPE)
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while True:
                assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.02)  # waiting for the port; nothing asserts on elapsed time
                    continue
                writer.close()
                break
        yield port
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        if process.stderr is not None:
            process.stderr.close()


async def status_of(url: str) -> int:
    """The HTTP status that refused the WebSocket handshake."""
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url):
            pass
    return refused.value.response.status_code


async def test_a_player_reaches_the_node_named_in_the_url_until_it_leaves(
    front: int, config_factory: Callable[..., Config], redis_url: str, redis_prefix: str
) -> None:
    sections: dict[str, Any] = {"redis": {"url": redis_url, "prefix": redis_prefix}}
    app = App(config_factory(**sections, server={"node_id": "routed"}))
    other = App(config_factory(**sections, server={"node_id": "other"}))
    await app.start()
    await other.start()
    try:
        ws = WsClient(await connect(f"ws://127.0.0.1:{front}/ws?node=routed"), binary=True)
        try:
            assert await ws.call("sys.echo", {"via": "front"}) == {"id": 1, "ok": True, "data": {"via": "front"}}
            assert len(app.listeners["ws"].connections) == 1  # this node, not the other one
            assert len(other.listeners["ws"].connections) == 0
        finally:
            await ws.close()
        assert await status_of(f"ws://127.0.0.1:{front}/ws?node=nobody") == 404
        assert await status_of(f"ws://127.0.0.1:{front}/ws") == 400
    finally:
        await app.stop()  # a graceful stop leaves the registry: the front stops sending players here
        try:
            assert await status_of(f"ws://127.0.0.1:{front}/ws?node=routed") == 404
        finally:
            await other.stop()
