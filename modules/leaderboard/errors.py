from enums import ModuleErrorCode
from gameserver.errors import GameError


class UnknownBoard(GameError):
    code = ModuleErrorCode.LEADERBOARD_UNKNOWN_BOARD
    message = "no such leaderboard"


class NoScore(GameError):
    code = ModuleErrorCode.LEADERBOARD_NO_SCORE
    message = "no score on this leaderboard yet"
