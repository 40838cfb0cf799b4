"""What ``chat.*`` answers (the typed client SDKs read these: ``gameserver sdk``)."""

from typing import TypedDict


class ChatLine(TypedDict):
    id: str  # the message id, unique across processes: what chat.report names
    uid: int
    name: str
    text: str
    ts: int  # server time, ms since the epoch


class ChatHistory(TypedDict):
    lines: list[ChatLine]


class Reported(TypedDict):
    report: int
