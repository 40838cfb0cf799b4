"""One gate message <-> bytes, in msgpack (TCP, WebSocket binary) or JSON (WebSocket text).

PROTOCOL.md, "Listeners": one frame carries exactly one map; bytes that are not one decodable map are a
protocol violation (close code 1007).
"""

from __future__ import annotations

import json
import math
from enum import Enum
from typing import Any

import msgpack

from gameserver.errors import CloseCode, ProtocolViolation


class Format(Enum):
    """The encoding of a frame; a reply goes out in the format of the request that caused it."""

    MSGPACK = "msgpack"
    JSON = "json"


_packer = msgpack.Packer(autoreset=True)
_json_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _not_json(literal: str) -> Any:
    # NaN, Infinity and numbers out of float range are not JSON values (RFC 8259, 6) and could not be
    # sent back: refuse them as undecodable instead of failing later on the reply.
    raise ValueError(f"{literal} is not a JSON number")


def _finite(literal: str) -> float:
    value = float(literal)
    if math.isinf(value):
        _not_json(literal)
    return value


_json_decoder = json.JSONDecoder(parse_constant=_not_json, parse_float=_finite)


def decode_msgpack(payload: bytes) -> dict[str, Any]:
    """Decode one msgpack map; anything else raises :class:`ProtocolViolation` (1007)."""
    try:
        value = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises ValueError, TypeError and its own errors
        raise ProtocolViolation(CloseCode.INVALID_DATA, f"undecodable msgpack: {type(exc).__name__}") from None
    if type(value) is not dict:
        raise ProtocolViolation(CloseCode.INVALID_DATA, f"expected a map, got {type(value).__name__}")
    return value


def decode_json(payload: bytes | str) -> dict[str, Any]:
    """Decode one JSON object; anything else raises :class:`ProtocolViolation` (1007)."""
    try:
        text = payload if isinstance(payload, str) else payload.decode()
        value = _json_decoder.decode(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ProtocolViolation(CloseCode.INVALID_DATA, f"undecodable JSON: {type(exc).__name__}") from None
    if type(value) is not dict:
        raise ProtocolViolation(CloseCode.INVALID_DATA, f"expected a JSON object, got {type(value).__name__}")
    if "\\ud" in text or "\\uD" in text:  # an escaped surrogate; alone, it is not Unicode text (RFC 8259, 8.2)
        try:
            _json_encoder.encode(value).encode()
        except UnicodeEncodeError:
            raise ProtocolViolation(CloseCode.INVALID_DATA, "undecodable JSON: lone surrogate") from None
    return value


def encode_msgpack(message: dict[str, Any]) -> bytes:
    """Raises TypeError or ValueError when a value has no msgpack form."""
    try:
        packed: bytes = _packer.pack(message)
        return packed
    except BaseException:
        _packer.reset()  # a failed pack leaves partial bytes in the packer's buffer
        raise


def encode_json(message: dict[str, Any]) -> str:
    """Raises TypeError or ValueError when a value has no JSON form (bytes, NaN, ...)."""
    return _json_encoder.encode(message)
