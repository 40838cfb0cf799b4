"""What ``friends.*`` answers (the typed client SDKs read these: ``gameserver sdk``)."""

from typing import NotRequired, TypedDict


class FriendRequested(TypedDict):
    to: int
    accepted: bool
    mail_id: str | None


class Friend(TypedDict):
    uid: int
    name: str


class FriendUid(TypedDict):
    uid: int


class FriendPresence(TypedDict):
    uid: int
    name: str
    online: NotRequired[bool]  # with presence (issue 16): online on any process now
    last_seen: NotRequired[int | None]  # ms since the epoch; now while online, null if never seen


class FriendList(TypedDict):
    friends: list[FriendPresence]
    requests: list[Friend]
