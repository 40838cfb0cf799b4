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
