"""What ``auth.*`` answers (the typed client SDKs read these: ``gameserver sdk``)."""

from typing import NotRequired, TypedDict


class Resume(TypedDict):
    """What a login or bind asked with ``resume`` adds (docs/PROTOCOL.md, "Resume")."""

    token: str
    grace: float  # seconds
    buffer: int  # messages kept at most


class AuthSession(TypedDict):
    uid: int
    token: str
    resume: NotRequired[Resume]


class ChatNonce(TypedDict):
    nonce: str
    expires_in: float  # seconds


class LoggedOut(TypedDict):
    uid: int
    revoked_before: int  # ms since the epoch


class Bound(TypedDict):
    uid: int
    resume: NotRequired[Resume]


class Resumed(TypedDict):
    uid: int
    resume: Resume
    replayed: int  # kept messages that follow this reply
