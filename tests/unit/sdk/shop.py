"""A fixture API for the SDK emitters: every kind of type the description has, and names that need care."""

from __future__ import annotations

import types
from typing import Any, NotRequired, TypedDict

from enums import ErrorCode, ItemKind
from gameserver.dispatch.registry import handler
from gameserver.sdk.model import describe


class Line(TypedDict):
    name: str
    data: bytes


class Receipt(TypedDict):
    id: int
    item: ItemKind
    paid: float
    ok: bool
    left: dict[str, int]
    lines: list[Line]
    when: int | None
    memo: NotRequired[str]
    extra: NotRequired[ItemKind]


async def buy(item: ItemKind, count: int, note: str | None = None, limit: int = 5, *, uid: int, **_: Any) -> Receipt:
    """Buys ``count`` of ``item`` <at once> & pays. Raises not_enough_items."""
    raise NotImplementedError


async def anything(value: Any, params: list[Line], options: dict[str, float] | None = None, **_: Any) -> Any:
    raise NotImplementedError


async def mixed(code: ErrorCode, either: int | str, *, uid: int, **_: Any) -> list[Receipt | None]:
    """Mixed types."""
    raise NotImplementedError


async def count(**_: Any) -> int:
    raise NotImplementedError


def package(**handlers: Any) -> types.ModuleType:
    module = types.ModuleType("fixture")
    module.HANDLERS = handlers  # type: ignore[attr-defined]
    return module


def shop_api() -> dict[str, Any]:
    """``shop.buy``, ``shop.anything``, ``shop.mixed`` and ``state.count`` (a module named like a GameClient
    member), with the shared enums and error codes."""
    modules = {
        "shop": package(buy=buy, anything=handler(anything, login=False, timeout=2.5), mixed=mixed),
        "state": package(count=handler(count, login=False)),
    }
    return describe(modules)
