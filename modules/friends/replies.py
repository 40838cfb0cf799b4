"""What ``friends.*`` answers (the typed client SDKs read these: ``gameserver sdk``)."""

from typing import TypedDict


class FriendRequested(TypedDict):
    to: int
    accepted: bool
    mail_id: str | None


class Friend(TypedDict):
    uid: int
    name: str


class FriendUid(TypedDict):
    uid: int


class FriendList(TypedDict):
    friends: list[Friend]
    requests: list[Friend]
