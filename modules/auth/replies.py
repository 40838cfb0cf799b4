"""What ``auth.*`` answers (the typed client SDKs read these: ``gameserver sdk``)."""

from typing import TypedDict


class AuthSession(TypedDict):
    uid: int
    token: str


class ChatNonce(TypedDict):
    nonce: str
    expires_in: float  # seconds


class LoggedOut(TypedDict):
    uid: int
    revoked_before: int  # ms since the epoch


class Bound(TypedDict):
    uid: int
