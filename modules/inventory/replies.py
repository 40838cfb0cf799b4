"""What ``inventory.*`` answers (the typed client SDKs read these: ``gameserver sdk``)."""

from typing import TypedDict

from enums import ItemKind


class OwnedItem(TypedDict):
    item: ItemKind
    name: str
    count: int


class Inventory(TypedDict):
    items: list[OwnedItem]


class ItemLeft(TypedDict):
    item: ItemKind
    count: int
