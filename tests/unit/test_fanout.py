"""gameserver/bus/fanout.py without a Redis: what is lost is counted, per channel prefix, and logged sparingly."""

from __future__ import annotations

import asyncio
import logging

import fakeredis
import pytest

from gameserver.bus.fanout import LOSS_LOG_INTERVAL, MAX_OUTBOX, RedisFanout


def loss_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.msg.startswith("fan-out: %d messages lost")]


async def test_a_full_outbox_loses_payloads_counted_by_prefix_and_warned_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = RedisFanout(fakeredis.FakeAsyncRedis())  # never started: nothing leaves the outbox
    chat_lost: list[int] = []
    bus.count_losses("p:chat.", chat_lost.append)
    for _ in range(MAX_OUTBOX):
        bus.publish("p:chat.1.public", b"queued")
    assert bus.failed == 0 and not loss_warnings(caplog)

    for _ in range(30):
        bus.publish("p:chat.1.public", b"lost")
        bus.publish("p:push.7", b"lost too")
    assert bus.failed == 60 and sum(chat_lost) == 30  # only the chat's channels reach the chat's counter
    [first] = loss_warnings(caplog)
    assert first.levelno == logging.WARNING and first.args == (1, "the outbox is full", 1, LOSS_LOG_INTERVAL)

    bus._logged_at -= LOSS_LOG_INTERVAL  # the interval passes: the next loss reports everything since the first
    bus.publish("p:push.7", b"lost")
    assert [r.args[0] for r in loss_warnings(caplog)] == [1, 60]  # type: ignore[index]
    await bus.redis.aclose()


async def test_close_right_after_the_last_unsubscribe_returns() -> None:
    # redis-py swallows a cancel that lands inside a pub/sub command (redis-py #2028 and kin): the commander,
    # cancelled while unsubscribing, went back to waiting for work and close() waited for it forever.
    bus = RedisFanout(fakeredis.FakeAsyncRedis())
    await bus.start()

    def receiver(channel: str, payload: bytes) -> None:
        pass

    bus.subscribe("p:chat.1.public", receiver)
    assert await bus.subscribed(["p:chat.1.public"], timeout=2)
    bus.unsubscribe("p:chat.1.public", receiver)
    await asyncio.sleep(0)  # the commander is now inside UNSUBSCRIBE
    async with asyncio.timeout(5):
        await bus.close()
