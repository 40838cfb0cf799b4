from enum import StrEnum


class ErrorCode(StrEnum):
    """Error codes every deployment has (PROTOCOL.md, "Error codes"). Modules add their own."""

    BAD_REQUEST = "bad_request"
    UNKNOWN_FUNCTION = "unknown_function"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"
    RESUME_FAILED = "resume_failed"


class ModuleErrorCode(StrEnum):
    """Error codes of the shipped game modules (mail, inventory, family, friends, account).

    Each module raises them through its own :class:`~gameserver.errors.GameError` subclasses; clients switch
    on the value, so a code is never renamed once shipped.
    """

    PLAYER_NOT_FOUND = "player_not_found"
    MAIL_NOT_FOUND = "mail_not_found"
    NOTHING_TO_CLAIM = "nothing_to_claim"
    ALREADY_CLAIMED = "already_claimed"
    MAILBOX_FULL = "mailbox_full"
    NOT_ENOUGH_ITEMS = "not_enough_items"
    FAMILY_NOT_FOUND = "family_not_found"
    FAMILY_NAME_TAKEN = "family_name_taken"
    FAMILY_FULL = "family_full"
    ALREADY_IN_FAMILY = "already_in_family"
    NOT_IN_FAMILY = "not_in_family"
    NOT_FAMILY_OWNER = "not_family_owner"
    WRONG_WORLD = "wrong_world"
    ALREADY_FRIENDS = "already_friends"
    NOT_FRIENDS = "not_friends"
    FRIEND_REQUEST_NOT_FOUND = "friend_request_not_found"
    TOO_MANY_FRIENDS = "too_many_friends"
    LEADERBOARD_UNKNOWN_BOARD = "leaderboard_unknown_board"
    LEADERBOARD_NO_SCORE = "leaderboard_no_score"


class AuthErrorCode(StrEnum):
    """Error codes of accounts and login (``auth.*`` functions and ``/auth/*`` routes; docs/auth.md)."""

    USERNAME_TAKEN = "username_taken"
    WRONG_CREDENTIALS = "wrong_credentials"
    ACCOUNT_NOT_FOUND = "account_not_found"


class ModerationErrorCode(StrEnum):
    """Error codes of moderation (docs/PROTOCOL.md, "Moderation"): chat ``ERROR`` lines, gate replies, HTTP."""

    BANNED = "banned"
    MUTED = "muted"
    FILTERED = "filtered"
    REPORT_NOT_FOUND = "report_not_found"
    LINE_NOT_FOUND = "line_not_found"
