"""What ``family.*`` answers (the typed client SDKs read these: ``gameserver sdk``)."""

from typing import TypedDict

from enums import FamilyRole


class FamilyCreated(TypedDict):
    family_id: int
    name: str
    world: int


class FamilyJoined(TypedDict):
    family_id: int
    name: str
    role: FamilyRole


class FamilyLeft(TypedDict):
    family_id: int
    disbanded: bool


class FamilyDisbanded(TypedDict):
    family_id: int
    members: list[int]


class FamilyMember(TypedDict):
    uid: int
    name: str
    role: FamilyRole


class FamilyInfo(TypedDict):
    family_id: int
    name: str
    world: int
    members: list[FamilyMember]


class RoleSet(TypedDict):
    uid: int
    role: FamilyRole


class Kicked(TypedDict):
    uid: int
