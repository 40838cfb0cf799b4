"""Per-developer instances (seed 000): two instances from one config template do not see each other's data.

Both run in this process from ``gameserver.commands.instances.instance(template, k)``, the same configs that
``gameserver instances start`` gives its processes: over the in-process store each has its own, and over one
shared real Redis their key prefixes keep them apart; each has its own SQLite database in its data dir.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from gameserver.app import App
from gameserver.commands.instances import instance
from tests.clients import WsClient

BACKENDS = [pytest.param("embedded"), pytest.param("redis", marks=pytest.mark.integration)]

PROBE = """
from gameserver.dispatch.registry import handler


async def put(key: str, value: str, *, redis, keys, **_):
    await redis.set(keys.prefix + "probe." + key, value)
    return True


async def get(key: str, *, redis, keys, **_):
    return await redis.get(keys.prefix + "probe." + key)


HANDLERS = {"put": handler(put, login=False), "get": handler(get, login=False)}
"""


@pytest.fixture(params=BACKENDS)
def redis_template(request: pytest.FixtureRequest) -> str:
    if request.param == "embedded":
        return ""
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
async def template(tmp_path: Path, redis_template: str) -> AsyncIterator[tuple[Path, str, str]]:
    """A config template on free ports; yields its path, the probe module's name and the Redis key prefix."""
    name = f"probe{uuid.uuid4().hex[:8]}"
    (tmp_path / "mods" / name).mkdir(parents=True)
    (tmp_path / "mods" / name / "__init__.py").write_text(PROBE)
    prefix = f"gstest-{uuid.uuid4().hex[:8]}:"
    path = tmp_path / "config.toml"
    path.write_text(
        f'[server]\ndata_dir = "{tmp_path / "var"}"\nshutdown_grace = 2.0\n'
        "[gate]\ntcp_port = 0\nws_port = 0\n[chat]\ntcp_port = 0\n[http]\nport = 0\n"
        f'[redis]\nurl = "{redis_template}"\nprefix = "{prefix}"\n'
        f'[modules]\npaths = ["{tmp_path / "mods"}"]\n[game]\nconfig = ""\n'
    )
    yield path, name, prefix
    if redis_template:  # delete what the test wrote under its own prefix, never anything else
        redis = Redis.from_url(redis_template)
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def test_two_instances_do_not_see_each_others_data(
    app_factory: Callable[..., Any], template: tuple[Path, str, str], redis_template: str
) -> None:
    path, probe, prefix = template
    one, two = instance(str(path), 1), instance(str(path), 2)
    assert (one.config.redis.prefix, two.config.redis.prefix) == (f"{prefix}dev1:", f"{prefix}dev2:")
    assert one.config.data_path != two.config.data_path
    assert one.config.log.file != two.config.log.file
    app1: App = await app_factory(one.config)
    app2: App = await app_factory(two.config)
    c1 = await WsClient.open(app1.ports["ws"])
    c2 = await WsClient.open(app2.ports["ws"])

    # Redis (the in-process store, or one real Redis shared through distinct prefixes)
    assert (await c1.call(f"{probe}.put", {"key": "k", "value": "from dev1"}))["ok"]
    assert (await c1.call(f"{probe}.get", {"key": "k"}))["data"] == "from dev1"
    assert (await c2.call(f"{probe}.get", {"key": "k"}))["data"] is None
    if redis_template:
        shared = Redis.from_url(redis_template, decode_responses=True)
        assert await shared.get(f"{prefix}dev1:probe.k") == "from dev1"
        await shared.aclose()

    # Accounts (each instance's own SQL database): one name, two players, two passwords
    first = await c1.call("auth.register", {"username": "twin", "password": "password-one"})
    second = await c2.call("auth.register", {"username": "twin", "password": "password-two"})
    assert first["ok"] and second["ok"], (first, second)
    assert (await c1.call("auth.login", {"username": "twin", "password": "password-two"}))["ok"] is False
    assert (await c2.call("auth.login", {"username": "twin", "password": "password-two"}))["ok"] is True
    await c1.close()
    await c2.close()


def test_profiles_in_the_template_win_over_the_derived_values(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[server]\ndata_dir = "var"\n[gate]\ntcp_port = 8880\nws_port = 8881\n[http]\nport = 8000\n'
        '[profiles.dev1]\ngate = { tcp_port = 7001 }\nlog = { file = "elsewhere.log" }\n'
    )
    one, two = instance(str(path), 1), instance(str(path), 2)
    assert (one.config.gate.tcp_port, one.config.gate.ws_port, one.config.http.port) == (7001, 9881, 9000)
    assert one.config.log.file == "elsewhere.log"
    assert (two.config.gate.tcp_port, two.config.chat.tcp_port, two.config.http.port) == (10880, 10890, 10000)
    # Absolute: an instance restarted in a developer's checkout (restart --code) keeps its data and log here
    assert two.config.log.file == str(Path("var/dev2/server.log").absolute())
    assert (two.config.server.node_id, two.config.redis.prefix) == ("dev2", "gs:dev2:")
