"""modules/account: profiles, renaming and name look-ups, on SQLite and MariaDB."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gameserver.errors import BadRequest, PlayerNotFound
from modules.account.handlers import names, profile, rename

Ctx = Callable[..., dict[str, Any]]
Player = Callable[..., Any]


async def test_profile_of_self_and_others(ctx: Ctx, player: Player) -> None:
    alice, bob = await player("Alice"), await player("Bob 🐉", world=3)
    assert await profile(**ctx(alice)) == {"uid": alice, "name": "Alice", "world": 1, "family": None}
    assert await profile(bob, **ctx(alice)) == {"uid": bob, "name": "Bob 🐉", "world": 3, "family": None}
    with pytest.raises(PlayerNotFound):
        await profile(123456789, **ctx(alice))


async def test_rename(ctx: Ctx, player: Player) -> None:
    alice = await player("Alice")
    assert (await rename("  Queen Alice  ", **ctx(alice)))["name"] == "Queen Alice"
    assert (await profile(**ctx(alice)))["name"] == "Queen Alice"
    for bad in ["", "   ", "x" * 33, "bad\x00name"]:
        with pytest.raises(BadRequest):
            await rename(bad, **ctx(alice))


async def test_names(ctx: Ctx, player: Player) -> None:
    alice, bob = await player("Alice"), await player("Bob")
    result = await names([bob, 999999, alice, bob], **ctx(alice))
    assert result == {"players": [{"uid": bob, "name": "Bob"}, {"uid": alice, "name": "Alice"}]}
    assert await names([], **ctx(alice)) == {"players": []}
    with pytest.raises(BadRequest):
        await names(list(range(1, 102)), **ctx(alice))
    with pytest.raises(BadRequest):
        await names(["1"], **ctx(alice))  # type: ignore[list-item]
