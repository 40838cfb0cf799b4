"""The gate request/response envelope (PROTOCOL.md, "Gate: request / response").

A request is ``{"id": int, "fn": str, "args": map?, "token": str?, "idem": str?}`` (``idem``: an idempotency key,
docs/PROTOCOL.md "Idempotency keys"); a reply is ``{"id", "ok", "data"}``
or ``{"id", "ok": false, "error": {"code", "message"}}``; a push is ``{"event", "data"}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gameserver.errors import BadRequest

IDEM_MAX = 128  # characters of an idempotency key


@dataclass(slots=True)
class Request:
    id: int
    fn: str
    args: dict[str, Any]
    token: str | None
    idem: str | None = None


class BadEnvelope(BadRequest):
    """A decodable map that is not a valid request; ``request_id`` is the id to echo (None if unusable)."""

    def __init__(self, request_id: int | None, message: str) -> None:
        super().__init__(message)
        self.request_id = request_id


def parse_request(message: dict[str, Any]) -> Request:
    """Check the envelope's shape. Raises :class:`BadEnvelope` for the first problem found."""
    request_id = message.get("id")
    if type(request_id) is not int:  # bool is not an id
        raise BadEnvelope(None, "id must be an integer")
    fn = message.get("fn")
    if type(fn) is not str:
        raise BadEnvelope(request_id, "fn must be a string")
    args = message.get("args")
    if args is None:
        args = {}
    elif type(args) is not dict:
        raise BadEnvelope(request_id, "args must be a map")
    token = message.get("token")
    if token is not None and type(token) is not str:
        raise BadEnvelope(request_id, "token must be a string")
    idem = message.get("idem")
    if idem is not None and (type(idem) is not str or not 0 < len(idem) <= IDEM_MAX):
        raise BadEnvelope(request_id, f"idem must be a string of 1 to {IDEM_MAX} characters")
    return Request(request_id, fn, args, token, idem)


def ok_reply(request_id: int, data: Any) -> dict[str, Any]:
    return {"id": request_id, "ok": True, "data": data}


def error_reply(
    request_id: int | None, code: str, message: str, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A failure; ``extra`` adds fields to the error object after ``code`` and ``message`` (the ``internal``
    error's correlation id ``cid``, and in development its ``exception``: docs/PROTOCOL.md, "Internal errors")."""
    error = {"code": code, "message": message}
    if extra:
        error.update(extra)
    return {"id": request_id, "ok": False, "error": error}


def push_message(event: str, data: Any) -> dict[str, Any]:
    return {"event": event, "data": data}
