"""The exceptions of gameserver and the client codes they carry.

Two levels that never mix: a :class:`GameError` is a request error, answered as a reply on a healthy
connection; a :class:`ProtocolViolation` means the peer broke the wire contract, and the driver closes
that one connection.

.. code-block:: text

    Exception
    ├── GameError                 code, message: becomes {"ok": false, "error": {...}}
    │   ├── BadRequest            bad_request
    │   ├── UnknownFunction       unknown_function
    │   ├── Unauthorized          unauthorized
    │   ├── Forbidden             forbidden
    │   ├── RateLimited           rate_limited
    │   │   └── Throttled         ... with retry_after seconds (HTTP: 429 + Retry-After)
    │   ├── Overloaded            overloaded
    │   ├── Timeout               timeout
    │   ├── Unavailable           unavailable: nothing was done
    │   ├── OutcomeUnknown        outcome_unknown: it may have been applied
    │   ├── PlayerNotFound        player_not_found: shared by every module that names another player
    │   └── (module errors)       e.g. class NameTaken(GameError): code = "family_name_taken"
    ├── ProtocolViolation         close_code: 1007 undecodable, 1009 too big, 1002 protocol error
    └── ConfigError               a setting is unknown or has a bad value; the server refuses to start

Anything else raised by a handler is a bug: the dispatcher answers ``internal`` / ``programming error``
and logs the traceback under a correlation id (PROTOCOL.md, "Error codes").
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar

from enums import ErrorCode, ModuleErrorCode


class CloseCode(IntEnum):
    """WebSocket close codes used by the gate and the chat edge (RFC 6455, 7.4.1)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011


class GameError(Exception):
    """A request error with a code that clients switch on.

    Subclass it in a module with a class attribute ``code`` (lowercase snake_case); the message
    defaults to the class's ``message``.
    """

    code: ClassVar[str] = ErrorCode.INTERNAL
    message: str = "error"

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)


class BadRequest(GameError):
    code = ErrorCode.BAD_REQUEST
    message = "bad request"


class UnknownFunction(GameError):
    code = ErrorCode.UNKNOWN_FUNCTION
    message = "no such function"


class Unauthorized(GameError):
    code = ErrorCode.UNAUTHORIZED
    message = "login required"


class Forbidden(GameError):
    code = ErrorCode.FORBIDDEN
    message = "not allowed"


class RateLimited(GameError):
    code = ErrorCode.RATE_LIMITED
    message = "too many requests"


class Throttled(RateLimited):
    """Over a limit that frees up in ``retry_after`` whole seconds (HTTP: 429 + ``Retry-After``).

    Subclasses say which limit in their ``message`` (``LoginThrottled``, the HTTP listener's per-address rate).
    """

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


class Overloaded(GameError):
    code = ErrorCode.OVERLOADED
    message = "server overloaded, retry later"


class Timeout(GameError):
    code = ErrorCode.TIMEOUT
    message = "no result within the deadline"


class Unavailable(GameError):
    code = ErrorCode.UNAVAILABLE
    message = "a backend is unavailable"


class ResumeFailed(GameError):
    """``session.resume`` cannot be honoured (docs/PROTOCOL.md, "Resume"): ``reason`` is the message's first word
    (expired, overflow, replaced, closed, lost, invalid, banned, revoked); nothing changed, the client logs in again."""

    code = ErrorCode.RESUME_FAILED

    def __init__(self, reason: str, sentence: str, uid: int | None = None) -> None:
        super().__init__(f"{reason}: {sentence}")
        self.reason = reason
        self.uid = uid  # the player whose session it was, when known


class PlayerNotFound(GameError):
    """No account with that uid: raised by ``modules.common.player`` and wherever a module names a player."""

    code = ModuleErrorCode.PLAYER_NOT_FOUND
    message = "no such player"
    status = 404


class OutcomeUnknown(GameError):
    """The request's effects may have been applied, or not (PROTOCOL.md, "Error codes this implementation adds")."""

    code: ClassVar[str] = "outcome_unknown"
    message = "it is not known whether the request was applied"


class ProtocolViolation(Exception):
    """The peer broke the wire contract; the driver closes this connection with ``close_code``."""

    def __init__(self, close_code: CloseCode, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.message = message


class ConfigError(Exception):
    """A setting is unknown or invalid; the message names the setting in full (``gate.tcp_port``)."""


class ModuleError(ConfigError):
    """A module package cannot be loaded: it does not import (a syntax or import error, an exception at import
    time), or what it declares is refused (a sync handler, a duplicate name, a parameter nothing fills). The
    message starts ``module <name>:`` and, for code errors, ends with the file:line."""


class PortInUse(OSError):
    """A listener's port is taken; the message names the listener and the setting that moves it."""

    def __init__(self, listener: str, host: str, port: int, setting: str) -> None:
        self.listener, self.host, self.port, self.setting = listener, host, port, setting
        super().__init__(f"{listener}: {host}:{port} is already in use (another gameserver?); change {setting}")
