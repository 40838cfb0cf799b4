"""The chat edge's per-line checks: mutes as heard on ``mod.changed``, then the word filter (no I/O per line)."""

from __future__ import annotations

import json
import time

import fakeredis

from gameserver.features.moderation.chatguard import ChatGuard
from gameserver.features.moderation.store import Moderation
from gameserver.features.moderation.wordfilter import WordFilter
from gameserver.keys import Keys


def guard(mode: str = "mask") -> ChatGuard:
    store = Moderation(fakeredis.FakeAsyncRedis(), Keys("t:"), lambda channel, payload: None)
    return ChatGuard(store, WordFilter(["darn"]), mode)


def changed(g: ChatGuard, uid: int, until: int | None, *, lifted: bool = False) -> None:
    mute = None if lifted else {"until": until, "reason": "", "by": "m", "at": 0}
    g.receiver()(g.channel, json.dumps({"uid": uid, "mute": mute}).encode())


def test_a_mute_refuses_until_lifted() -> None:
    g = guard()
    changed(g, 7, None)
    assert g.check(7, "hello") == (None, "muted")
    assert g.check(8, "hello") == ("hello", None)
    changed(g, 7, None, lifted=True)
    assert g.check(7, "hello") == ("hello", None)


def test_a_mute_that_ended_lets_lines_through() -> None:
    g = guard()
    changed(g, 7, int(time.time() * 1000) - 1)
    assert g.check(7, "hello") == ("hello", None)
    assert 7 not in g.mutes


def test_the_filter_masks_or_rejects() -> None:
    assert guard("mask").check(1, "oh darn") == ("oh ****", None)
    assert guard("reject").check(1, "oh darn") == (None, "filtered")
    assert guard("off").check(1, "oh darn") == ("oh darn", None)


def test_a_bad_change_is_ignored() -> None:
    g = guard()
    g.receiver()(g.channel, b"not json")
    g.receiver()(g.channel, b'{"uid": "x"}')
    assert g.mutes == {}
