"""gameserver/storage/kv.py over the in-process store and Redis: the same tests, the same answers."""

from __future__ import annotations

import asyncio

import fakeredis

from gameserver.config import RedisConfig
from gameserver.storage.kv import open_redis
from tests.integration.conftest import Kv

WAIT = 5.0  # seconds to wait for a condition before failing


async def test_strings_and_replies_are_str(kv: Kv) -> None:
    r, key = kv.redis, kv.key("s")
    assert await r.set(key, "héllo 🎮") is True
    assert await r.get(key) == "héllo 🎮"
    assert await r.set(key, "other", nx=True) is None
    assert await r.incr(kv.key("n")) == 1
    assert await r.incrby(kv.key("n"), 41) == 42
    assert await r.get(kv.key("missing")) is None
    assert await r.delete(key, kv.key("n"), kv.key("missing")) == 2


async def test_getdel_hands_a_value_to_exactly_one_caller(kv: Kv) -> None:
    """A single-use nonce (PROTOCOL.md, ``/auth/nonce``): of many concurrent redeemers, one gets it."""
    key = kv.key("nonce")
    await kv.redis.set(key, "identity")
    clients = [kv.open() for _ in range(5)]
    try:
        results = await asyncio.gather(*(c.getdel(key) for c in clients for _ in range(4)))
    finally:
        for c in clients:
            await c.aclose()
    assert results.count("identity") == 1
    assert results.count(None) == len(results) - 1
    assert await kv.redis.exists(key) == 0


async def test_hashes(kv: Kv) -> None:
    r, key = kv.redis, kv.key("h")
    assert await r.hset(key, mapping={"name": "ann", "level": "3"}) == 2
    assert await r.hincrby(key, "level", 2) == 5
    assert await r.hgetall(key) == {"name": "ann", "level": "5"}
    assert await r.hget(key, "missing") is None
    assert await r.hdel(key, "name") == 1
    assert await r.hkeys(key) == ["level"]


async def test_ttl(kv: Kv) -> None:
    r, key = kv.redis, kv.key("t")
    await r.set(key, "v", ex=100)
    assert 0 < await r.ttl(key) <= 100
    assert await r.persist(key) is True
    assert await r.ttl(key) == -1
    assert await r.ttl(kv.key("missing")) == -2
    await r.set(key, "v", px=1)
    async with asyncio.timeout(WAIT):  # the key expires: wait for the condition, not for a duration
        while await r.exists(key):
            await asyncio.sleep(0.005)


async def test_sorted_sets(kv: Kv) -> None:
    r, key = kv.redis, kv.key("z")
    await r.zadd(key, {"ann": 30, "bob": 10, "cid": 20})
    assert await r.zadd(key, {"bob": 5}, gt=True) == 0  # GT: only raise a score
    assert await r.zrevrange(key, 0, 1, withscores=True) == [("ann", 30.0), ("cid", 20.0)]
    assert await r.zrevrank(key, "bob") == 2


CLAIM = """
-- Take KEYS[1] only if it still holds ARGV[1]: a compare-and-delete, atomic on the server.
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


async def test_lua_script(kv: Kv) -> None:
    r, key = kv.redis, kv.key("lock")
    claim = r.register_script(CLAIM)
    await r.set(key, "owner-a")
    assert await claim(keys=[key], args=["owner-b"]) == 0
    assert await r.get(key) == "owner-a"
    assert await claim(keys=[key], args=["owner-a"]) == 1
    assert await r.exists(key) == 0
    other = kv.open()  # the script cache is the server's: another client runs it by its sha
    try:
        await other.set(key, "owner-c")
        assert await other.register_script(CLAIM)(keys=[key], args=["owner-c"]) == 1
    finally:
        await other.aclose()


async def test_pubsub(kv: Kv) -> None:
    channel = kv.key("chat.1.public")
    subscriber = kv.open()
    pubsub = subscriber.pubsub()
    try:
        await pubsub.subscribe(channel)
        async with asyncio.timeout(WAIT):
            assert (await pubsub.get_message(timeout=WAIT))["type"] == "subscribe"
        assert await kv.redis.publish(channel, "héllo 🎮") == 1
        async with asyncio.timeout(WAIT):
            message = None
            while message is None:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=WAIT)
        assert (message["channel"], message["data"]) == (channel, "héllo 🎮")
        await pubsub.unsubscribe(channel)
        assert await kv.redis.publish(channel, "nobody") == 0
    finally:
        await pubsub.aclose()
        await subscriber.aclose()


async def test_embedded_store_is_one_per_server() -> None:
    """Clients of one FakeServer (one app) share data; another app's server is separate."""
    one, other = fakeredis.FakeServer(), fakeredis.FakeServer()
    a, b, c = (open_redis(RedisConfig(), fake_server=server) for server in (one, one, other))
    try:
        await a.set("k", "v")
        assert await b.get("k") == "v"
        assert await c.get("k") is None
    finally:
        for client in (a, b, c):
            await client.aclose()
