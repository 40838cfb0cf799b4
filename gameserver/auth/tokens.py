"""Session tokens: JWTs signed with HS256 and a server secret (seed 003: "token会包含用户的unique id").

Claims: ``sub`` (the uid as a string, RFC 7519), ``iat``, ``exp``, ``iss``. The algorithm is pinned here
and never read from the token, so ``alg: none`` and algorithm-confusion tokens are refused. Pure apart from
the clock: any process holding the secret verifies tokens without a database or Redis.
"""

from __future__ import annotations

import time

import jwt

from gameserver.errors import Unauthorized

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "iat", "exp", "iss")
LEEWAY = 10.0  # seconds of clock skew tolerated between the processes that issue and check tokens
MAX_TOKEN = 4096  # longer strings are not our tokens; refuse them before parsing


class Tokens:
    """Issues and verifies tokens.

    Args:
        secret: the HS256 key (at least 32 bytes; :func:`gameserver.auth.secret.load_secret` checks).
        issuer: the ``iss`` claim written and required.
        ttl: seconds from issue to expiry.
    """

    def __init__(self, secret: bytes, *, issuer: str, ttl: float) -> None:
        self._secret = secret
        self.issuer = issuer
        self.ttl = ttl

    def issue(self, uid: int, *, now: float | None = None) -> str:
        """A token for ``uid``, valid for ``ttl`` seconds from ``now`` (default: the current time)."""
        issued = int(time.time() if now is None else now)
        claims = {"sub": str(uid), "iat": issued, "exp": issued + int(self.ttl), "iss": self.issuer}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> int:
        """The uid a token was issued for (the dispatcher's ``Authenticate`` hook).

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
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub.isascii() or not sub.isdigit():
            raise Unauthorized("invalid token")
        return int(sub)
