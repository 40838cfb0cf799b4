"""Session tokens: JWTs signed with HS256 and a server secret (seed 003: "token会包含用户的unique id").

Claims: ``sub`` (the uid as a string, RFC 7519), ``iat`` (with milliseconds: a NumericDate may be
fractional, RFC 7519 2), ``exp``, ``iss``, and ``auth_time`` (OpenID Connect's name: when the player last
gave their password, carried unchanged by refresh; ``exp`` never passes ``auth_time + max_age``). The
algorithm is pinned here and never read from the token, so ``alg: none`` and algorithm-confusion tokens are
refused. Pure apart from the clock: any process holding the secret verifies tokens without a database or
Redis (revocation is checked on top: ``gameserver/features/identity/revocations.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from gameserver.errors import Unauthorized

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "iat", "exp", "iss")
LEEWAY = 10.0  # seconds of clock skew tolerated between the processes that issue and check tokens
MAX_TOKEN = 4096  # longer strings are not our tokens; refuse them before parsing


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says: who (``uid``), when it was issued (``issued_ms``, ms since the epoch) and when
    its holder last logged in with a password (``auth_time``, seconds since the epoch)."""

    uid: int
    issued_ms: int
    auth_time: int


class Tokens:
    """Issues and verifies tokens.

    Args:
        secret: the HS256 key (at least 32 bytes; :func:`gameserver.features.identity.secret.load_secret` checks).
        issuer: the ``iss`` claim written and required.
        ttl: seconds from issue to expiry.
        max_age: seconds from ``auth_time`` past which no token of that login is valid (None: no bound).
    """

    def __init__(self, secret: bytes, *, issuer: str, ttl: float, max_age: float | None = None) -> None:
        self._secret = secret
        self.issuer = issuer
        self.ttl = ttl
        self.max_age = max_age

    def issue(self, uid: int, *, auth_time: int | None = None, after: int = 0, now: float | None = None) -> str:
        """A token for ``uid``, valid for ``ttl`` seconds from ``now`` (default: the current time).

        Args:
            auth_time: when the player logged in (a refresh passes the old token's); None: ``now``, a login.
            after: ms since the epoch that the token's ``iat`` must be later than (the account's revocation
                time: a token issued right after a logout, on a process whose clock is behind, is not revoked).
        """
        now = time.time() if now is None else now
        issued_ms = max(round(now * 1000), after + 1)
        authenticated = int(now) if auth_time is None else auth_time
        expires = issued_ms // 1000 + int(self.ttl)
        if self.max_age is not None:
            expires = min(expires, authenticated + int(self.max_age))
        claims = {
            "sub": str(uid),
            "iat": issued_ms / 1000,
            "exp": expires,
            "iss": self.issuer,
            "auth_time": authenticated,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> int:
        """The uid a token was issued for.

        Raises:
            Unauthorized: the token is missing, malformed, forged, from another issuer, or expired.
        """
        return self.claims(token).uid

    def claims(self, token: str) -> Claims:
        """What a valid token says. Tokens from before ``auth_time`` existed count from their ``iat``.

        Raises:
            Unauthorized: the token is missing, malformed, forged, from another issuer, or expired.
        """
        if not token or len(token) > MAX_TOKEN:
            raise Unauthorized("invalid token")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                leeway=LEEWAY,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.PyJWTError:
            raise Unauthorized("invalid token") from None
        sub, issued, authenticated = claims["sub"], claims["iat"], claims.get("auth_time", claims["iat"])
        if not isinstance(sub, str) or not sub.isascii() or not sub.isdigit():
            raise Unauthorized("invalid token")
        if not _number(issued) or not _number(authenticated):
            raise Unauthorized("invalid token")
        return Claims(int(sub), round(issued * 1000), int(authenticated))


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # no NaN
