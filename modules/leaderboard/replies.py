"""What ``leaderboard.*`` answers (the typed client SDKs read these: ``gameserver sdk``)."""

from typing import TypedDict


class Submitted(TypedDict):
    best: int
    improved: bool


class Rank(TypedDict):
    score: int
    rank: int


class Score(TypedDict):
    uid: int
    score: int


class Top(TypedDict):
    board: str
    scores: list[Score]
