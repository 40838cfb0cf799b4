"""modules/family: create, join, leave, disband, members, roles; the chat resource follows, on both backends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from enums import FamilyRole
from gameserver.config import Config
from gameserver.errors import BadRequest, Forbidden
from modules.account.handlers import profile
from modules.family.handlers import (
    AlreadyInFamily,
    FamilyFull,
    FamilyNameTaken,
    FamilyNotFound,
    NotFamilyOwner,
    NotInFamily,
    WrongWorld,
    create,
    disband,
    join,
    kick,
    leave,
    members,
    set_member_role,
)
from tests.modules.conftest import Pushes

Ctx = Callable[..., dict[str, Any]]
Player = Callable[..., Any]


class FakeChat:
    """Stands in for the chat edge's ``chat`` resource: records ``set_family`` calls."""

    def __init__(self) -> None:
        self.moves: list[tuple[int, int, int | None]] = []

    async def set_family(self, uid: int, world: int, family: int | None) -> None:
        self.moves.append((uid, world, family))


async def test_create_join_members_leave(ctx: Ctx, player: Player) -> None:
    chat = FakeChat()
    owner, member = await player("Olga", world=2), await player("Max", world=2)
    made = await create("  Dragons 🐉 ", **ctx(owner, chat=chat))
    family_id = made["family_id"]
    assert made == {"family_id": family_id, "name": "Dragons 🐉", "world": 2}
    assert (await profile(**ctx(owner)))["family"] == family_id  # accounts.family, what chat LOGIN reads

    assert await join(family_id, **ctx(member, chat=chat)) == {
        "family_id": family_id,
        "name": "Dragons 🐉",
        "role": FamilyRole.MEMBER,
    }
    listed = await members(**ctx(member))
    assert listed["members"] == [
        {"uid": owner, "name": "Olga", "role": FamilyRole.OWNER},
        {"uid": member, "name": "Max", "role": FamilyRole.MEMBER},
    ]
    assert (await members(family_id, **ctx(await player("Outsider"))))["name"] == "Dragons 🐉"

    assert await leave(**ctx(member, chat=chat)) == {"family_id": family_id, "disbanded": False}
    assert (await profile(**ctx(member)))["family"] is None
    assert chat.moves == [(owner, 2, family_id), (member, 2, family_id), (member, 2, None)]
    with pytest.raises(NotInFamily) as info:
        await members(**ctx(member))
    assert info.value.code == "not_in_family"

    assert await leave(**ctx(owner)) == {"family_id": family_id, "disbanded": True}  # the last one out
    with pytest.raises(FamilyNotFound):
        await join(family_id, **ctx(member))


async def test_without_a_chat_resource(ctx: Ctx, player: Player) -> None:
    owner = await player("Olga")
    assert (await create("Quiet", **ctx(owner, chat=None)))["name"] == "Quiet"  # no `chat`: nothing to move


async def test_a_failing_chat_does_not_undo_the_join(ctx: Ctx, player: Player) -> None:
    class BrokenChat:
        def set_family(self, uid: int, world: int, family: int | None) -> None:
            raise RuntimeError("chat down")

    owner = await player("Olga")
    family_id = (await create("Sturdy", **ctx(owner, chat=BrokenChat())))["family_id"]
    assert (await profile(**ctx(owner)))["family"] == family_id


async def test_refusals(ctx: Ctx, player: Player, config: Config) -> None:
    owner, other, far = await player("Olga"), await player("Max"), await player("Far", world=9)
    family_id = (await create("Dragons", **ctx(owner)))["family_id"]
    with pytest.raises(AlreadyInFamily):
        await create("Second", **ctx(owner))
    with pytest.raises(AlreadyInFamily):
        await join(family_id, **ctx(owner))
    with pytest.raises(FamilyNameTaken) as taken:
        await create("Dragons", **ctx(other))
    assert taken.value.code == "family_name_taken"
    assert (await create("Dragons", **ctx(far)))["world"] == 9  # unique per world only
    with pytest.raises(WrongWorld):
        await join(family_id, **ctx(await player("Far2", world=9)))
    with pytest.raises(FamilyNotFound):
        await join(10**9, **ctx(other))
    for bad in ["x", "y" * 17, "tab\there"]:
        with pytest.raises(BadRequest):
            await create(bad, **ctx(other))
    with pytest.raises(NotInFamily):
        await leave(**ctx(other))
    await join(family_id, **ctx(other))
    with pytest.raises(Forbidden):
        await leave(**ctx(owner))  # an owner with members hands over or disbands
    with pytest.raises(NotFamilyOwner):
        await disband(**ctx(other))


async def test_roles_hand_over_and_kick(ctx: Ctx, player: Player, pushes: Pushes) -> None:
    owner, elder, member = await player("Olga"), await player("Eli"), await player("Max")
    family_id = (await create("Dragons", **ctx(owner)))["family_id"]
    await join(family_id, **ctx(elder))
    await join(family_id, **ctx(member))
    assert await set_member_role(elder, FamilyRole.ELDER, **ctx(owner)) == {"uid": elder, "role": FamilyRole.ELDER}
    with pytest.raises(NotFamilyOwner):
        await set_member_role(member, FamilyRole.ELDER, **ctx(elder))
    with pytest.raises(BadRequest):
        await set_member_role(member, 99, **ctx(owner))
    with pytest.raises(BadRequest):
        await set_member_role(owner, FamilyRole.MEMBER, **ctx(owner))
    with pytest.raises(Forbidden):
        await kick(elder, **ctx(member))
    with pytest.raises(Forbidden):
        await kick(owner, **ctx(elder))

    assert await kick(member, **ctx(elder)) == {"uid": member}
    assert pushes.of(member) == [("family.kicked", {"family_id": family_id, "name": "Dragons"})]
    assert (await profile(**ctx(member)))["family"] is None

    await set_member_role(elder, FamilyRole.OWNER, **ctx(owner))  # hand the family over
    roles = {m["uid"]: m["role"] for m in (await members(**ctx(owner)))["members"]}
    assert roles == {elder: FamilyRole.OWNER, owner: FamilyRole.ELDER}
    await leave(**ctx(owner))
    assert (await disband(**ctx(elder)))["members"] == [elder]


async def test_disband_tells_the_members(ctx: Ctx, player: Player, pushes: Pushes) -> None:
    chat = FakeChat()
    owner, member = await player("Olga"), await player("Max")
    family_id = (await create("Dragons", **ctx(owner)))["family_id"]
    await join(family_id, **ctx(member))
    result = await disband(**ctx(owner, chat=chat))
    assert sorted(result["members"]) == sorted([owner, member])
    assert pushes.of(member) == [("family.disbanded", {"family_id": family_id, "name": "Dragons"})]
    assert pushes.of(owner) == []
    assert sorted(chat.moves) == sorted([(owner, 1, None), (member, 1, None)])
    assert (await profile(**ctx(member)))["family"] is None


async def test_concurrent_joins_never_overfill(ctx: Ctx, player: Player, config: Config) -> None:
    small = config.replace(modules={"family": {"max_members": 3}})
    owner = await player("Olga")
    family_id = (await create("Small", **ctx(owner, config=small)))["family_id"]
    joiners = [await player(f"P{n}") for n in range(8)]

    async def attempt(uid: int) -> str:
        try:
            await join(family_id, **ctx(uid, config=small))
            return "ok"
        except FamilyFull:
            return "full"

    results = await asyncio.gather(*(attempt(uid) for uid in joiners))
    assert results.count("ok") == 2 and results.count("full") == 6
    assert len((await members(**ctx(owner)))["members"]) == 3
