"""What ``account.*`` answers (the typed client SDKs read these: ``gameserver sdk``)."""

from typing import TypedDict


class Profile(TypedDict):
    uid: int
    name: str
    world: int
    family: int | None


class PlayerName(TypedDict):
    uid: int
    name: str


class Names(TypedDict):
    players: list[PlayerName]
