"""modules/friends: a request arrives as a mail; accept, decline, list, remove; on both backends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from enums import MailKind
from gameserver.config import Config
from gameserver.errors import BadRequest, PlayerNotFound
from gameserver.features.mailbox import MailboxFull, MailStore
from modules.friends.handlers import (
    AlreadyFriends,
    FriendRequestNotFound,
    NotFriends,
    TooManyFriends,
    accept,
    decline,
    list_friends,
    remove,
    request,
)
from modules.mail.handlers import delete, list_mails, read
from tests.modules.conftest import Pushes

Ctx = Callable[..., dict[str, Any]]
Player = Callable[..., Any]


async def test_request_is_a_mail_then_accept(ctx: Ctx, player: Player, pushes: Pushes) -> None:
    alice, bob = await player("Alice"), await player("Bob", world=2)
    asked = await request(bob, **ctx(alice))
    assert asked["accepted"] is False and asked["mail_id"]

    [(event, data)] = pushes.of(bob)
    assert event == "mail.new" and data["kind"] == MailKind.FRIEND_REQUEST and data["data"] == {"from": alice}
    [shown] = (await list_mails(**ctx(bob)))["mails"]
    assert shown["mail_id"] == asked["mail_id"] and shown["from"] == alice
    assert "Alice" in (await read(asked["mail_id"], **ctx(bob)))["body"]
    assert await list_friends(**ctx(bob)) == {"friends": [], "requests": [{"uid": alice, "name": "Alice"}]}

    again = await request(bob, **ctx(alice))  # asking twice sends no second mail
    assert again == {"to": bob, "accepted": False, "mail_id": None}
    assert len(pushes.of(bob)) == 1

    assert await accept(alice, **ctx(bob)) == {"uid": alice, "name": "Alice"}
    assert pushes.of(alice) == [("friends.accepted", {"uid": bob, "name": "Bob"})]
    assert await list_friends(**ctx(alice)) == {"friends": [{"uid": bob, "name": "Bob"}], "requests": []}
    assert await list_friends(**ctx(bob)) == {"friends": [{"uid": alice, "name": "Alice"}], "requests": []}
    with pytest.raises(AlreadyFriends):
        await request(bob, **ctx(alice))
    with pytest.raises(FriendRequestNotFound):
        await accept(alice, **ctx(bob))


async def test_request_to_a_full_mailbox_is_refused_and_leaves_nothing(
    ctx: Ctx, player: Player, pushes: Pushes, tmp_path: Path
) -> None:
    alice, bob, carol = await player("Alice"), await player("Bob"), await player("Carol")
    capped = MailStore(tmp_path / "capped", max_messages=1)
    await request(bob, **ctx(carol, mail=capped))
    with pytest.raises(MailboxFull) as info:
        await request(bob, **ctx(alice, mail=capped))
    assert info.value.code == "mailbox_full"
    assert await list_friends(**ctx(bob)) == {"friends": [], "requests": [{"uid": carol, "name": "Carol"}]}
    assert [data["from"] for _, data in pushes.of(bob)] == [carol]

    [waiting] = (await list_mails(**ctx(bob, mail=capped)))["mails"]
    await delete(waiting["mail_id"], **ctx(bob, mail=capped))  # room again: alice may ask once more
    asked = await request(bob, **ctx(alice, mail=capped))
    assert asked["mail_id"] and not asked["accepted"]
    assert await accept(alice, **ctx(bob)) == {"uid": alice, "name": "Alice"}


async def test_asking_back_accepts(ctx: Ctx, player: Player, pushes: Pushes) -> None:
    alice, bob = await player("Alice"), await player("Bob")
    await request(bob, **ctx(alice))
    assert await request(alice, **ctx(bob)) == {"to": alice, "accepted": True, "mail_id": None}
    assert ("friends.accepted", {"uid": bob, "name": "Bob"}) in pushes.of(alice)
    assert [f["uid"] for f in (await list_friends(**ctx(alice)))["friends"]] == [bob]


async def test_decline_and_remove(ctx: Ctx, player: Player) -> None:
    alice, bob, carol = await player("Alice"), await player("Bob"), await player("Carol")
    await request(bob, **ctx(alice))
    assert await decline(alice, **ctx(bob)) == {"uid": alice}
    with pytest.raises(FriendRequestNotFound) as info:
        await decline(alice, **ctx(bob))
    assert info.value.code == "friend_request_not_found"
    assert await list_friends(**ctx(bob)) == {"friends": [], "requests": []}

    await request(carol, **ctx(alice))
    await accept(alice, **ctx(carol))
    assert await remove(alice, **ctx(carol)) == {"uid": alice}
    assert (await list_friends(**ctx(alice)))["friends"] == []
    with pytest.raises(NotFriends):
        await remove(carol, **ctx(alice))


async def test_refusals(ctx: Ctx, player: Player, config: Config) -> None:
    alice, bob, carol = await player("Alice"), await player("Bob"), await player("Carol")
    with pytest.raises(BadRequest):
        await request(alice, **ctx(alice))
    with pytest.raises(PlayerNotFound):
        await request(10**12, **ctx(alice))
    one = config.replace(modules={"friends": {"max_friends": 1}})
    await request(bob, **ctx(alice, config=one))
    await accept(alice, **ctx(bob, config=one))
    await request(alice, **ctx(carol, config=one))
    with pytest.raises(TooManyFriends) as info:
        await accept(carol, **ctx(alice, config=one))
    assert info.value.code == "too_many_friends"
    assert await list_friends(**ctx(alice)) == {
        "friends": [{"uid": bob, "name": "Bob"}],
        "requests": [{"uid": carol, "name": "Carol"}],  # still waiting: the failed accept rolled back
    }
