"""GET /config (PROTOCOL.md, "HTTP"): JSON with a strong ETag, 304 on If-None-Match, new versions without restart."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gameserver.app import App
from gameserver.errors import ConfigError
from tests.clients import WsClient, http_url


def game_folder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "items.toml").write_text('[coin]\nname = "Coin"\n')
    (root / "world.json").write_text('{"motd": "hello"}')
    return root


async def get_config(
    client_session: aiohttp.ClientSession, app: App, etag: str | None = None
) -> aiohttp.ClientResponse:
    headers = {"If-None-Match": etag} if etag else {}
    async with client_session.get(http_url(app, "/config"), headers=headers) as response:
        await response.read()
        return response


async def next_etag(
    client_session: aiohttp.ClientSession, app: App, old: str, timeout: float = 5.0
) -> aiohttp.ClientResponse:
    """Ask with ``If-None-Match: old`` until the server has a new version (200), at most ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            response = await get_config(client_session, app, old)
            if response.status == 200:
                return response
            assert response.status == 304
            await asyncio.sleep(0.02)


async def test_config_with_etag_304_and_change_detection(
    app_factory: Callable[..., Any], client_session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    folder = game_folder(tmp_path / "game")
    app = await app_factory(game={"config": str(folder), "poll": 0.02})

    first = await get_config(client_session, app)
    assert first.status == 200
    assert first.content_type == "application/json"
    assert await first.json() == {"items": {"coin": {"name": "Coin"}}, "world": {"motd": "hello"}}
    etag = first.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")

    cached = await get_config(client_session, app, etag)
    assert cached.status == 304 and cached.headers["ETag"] == etag
    assert (await get_config(client_session, app, f"W/{etag}")).status == 304
    assert (await get_config(client_session, app, '"stale"')).status == 200

    (folder / "world.json").write_text('{"motd": "patched"}')
    changed = await next_etag(client_session, app, etag)
    assert changed.headers["ETag"] != etag
    assert (await changed.json())["world"] == {"motd": "patched"}

    (folder / "events.toml").write_text("double_xp = true\n")  # a new file is a change too
    added = await next_etag(client_session, app, changed.headers["ETag"])
    assert (await added.json())["events"] == {"double_xp": True}


async def test_a_broken_edit_keeps_serving_the_last_good_version(
    app_factory: Callable[..., Any], client_session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    folder = game_folder(tmp_path / "game")
    app = await app_factory(game={"config": str(folder), "poll": 0.02})
    game = app.resources.extra["game"]
    etag = (await get_config(client_session, app)).headers["ETag"]

    (folder / "items.toml").write_text("[coin\n")
    async with asyncio.timeout(5):
        while not game.error:
            await asyncio.sleep(0.02)
    assert "items.toml" in game.error
    assert (await get_config(client_session, app, etag)).status == 304
    async with client_session.get(http_url(app, "/console/api/status")) as response:
        assert "items.toml" in (await response.json())["game_config"]["error"]

    (folder / "items.toml").write_text('[coin]\nname = "Gold coin"\n')
    fixed = await next_etag(client_session, app, etag)
    assert (await fixed.json())["items"]["coin"]["name"] == "Gold coin"
    assert game.error == ""


async def test_handlers_read_the_current_game_config(
    app_factory: Callable[..., Any], client_session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    folder = game_folder(tmp_path / "game")
    name = f"probe{uuid.uuid4().hex[:8]}"
    package = tmp_path / "mods" / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "from gameserver.dispatch.registry import handler\n\n"
        "async def motd(*, game, **_):\n    return {'motd': game.data['world']['motd'], 'etag': game.etag}\n\n"
        "HANDLERS = {'motd': handler(motd, login=False)}\n"
    )
    app = await app_factory(game={"config": str(folder), "poll": 0.02}, modules={"paths": [str(tmp_path / "mods")]})
    client = await WsClient.open(app.ports["ws"])
    etag = (await get_config(client_session, app)).headers["ETag"]
    assert (await client.call(f"{name}.motd"))["data"] == {"motd": "hello", "etag": etag}

    (folder / "world.json").write_text('{"motd": "new season"}')
    new = (await next_etag(client_session, app, etag)).headers["ETag"]
    assert (await client.call(f"{name}.motd"))["data"] == {"motd": "new season", "etag": new}
    await client.close()


async def test_a_broken_game_config_stops_start_up(app_factory: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="bad.json"):
        await app_factory(game={"config": str(tmp_path / "bad.json")})


async def test_a_missing_game_config_serves_an_empty_object_until_it_appears(
    app_factory: Callable[..., Any], client_session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    folder = tmp_path / "game"
    app = await app_factory(game={"config": str(folder), "poll": 0.02})
    empty = await get_config(client_session, app)
    assert empty.status == 200 and await empty.json() == {}
    assert "does not exist" in app.resources.extra["game"].error

    game_folder(folder)
    appeared = await next_etag(client_session, app, empty.headers["ETag"])
    assert (await appeared.json())["world"] == {"motd": "hello"}
    assert app.resources.extra["game"].error == ""


async def test_without_a_game_config_the_server_serves_an_empty_object(
    app_factory: Callable[..., Any], client_session: aiohttp.ClientSession
) -> None:
    app = await app_factory(game={"config": ""})
    response = await get_config(client_session, app)
    assert response.status == 200 and await response.json() == {}
