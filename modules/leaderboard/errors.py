from gameserver.errors import GameError


class UnknownBoard(GameError):
    code = "leaderboard_unknown_board"
    message = "no such leaderboard"


class NoScore(GameError):
    code = "leaderboard_no_score"
    message = "no score on this leaderboard yet"
