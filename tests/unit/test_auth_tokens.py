"""Session tokens (gameserver/features/identity/tokens.py): HS256 pinned, required claims, expiry, forgeries."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import jwt
import pytest

from gameserver.errors import Unauthorized
from gameserver.features.identity.tokens import LEEWAY, Claims, Tokens

KEY = b"k" * 64  # long enough for the HS512 forgery below too
TOKENS = Tokens(KEY, issuer="gameserver", ttl=3600)


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def refused(token: str) -> str:
    with pytest.raises(Unauthorized) as caught:
        TOKENS.verify(token)
    assert caught.value.code == "unauthorized"
    return caught.value.message


def test_round_trip() -> None:
    token = TOKENS.issue(42, now=1_700_000_000)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims == {
        "sub": "42",
        "iat": 1_700_000_000,
        "exp": 1_700_003_600,
        "iss": "gameserver",
        "auth_time": 1_700_000_000,
    }
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert TOKENS.verify(TOKENS.issue(42)) == 42


def test_claims_carry_milliseconds_and_the_login_time() -> None:
    now = time.time()
    fresh = TOKENS.claims(TOKENS.issue(7, now=now - 0.25))
    assert fresh == Claims(7, round((now - 0.25) * 1000), int(now - 0.25))
    refreshed = TOKENS.claims(TOKENS.issue(7, auth_time=fresh.auth_time, now=now))
    assert (refreshed.uid, refreshed.auth_time) == (7, fresh.auth_time)
    assert refreshed.issued_ms - fresh.issued_ms == 250  # a logout between them is told apart


def test_issued_after_a_revocation() -> None:
    now = time.time()
    revoked_at = round(now * 1000) + 40  # another process's clock, 40 ms ahead of this one
    assert TOKENS.claims(TOKENS.issue(7, after=revoked_at, now=now)).issued_ms == revoked_at + 1
    assert TOKENS.claims(TOKENS.issue(7, after=revoked_at - 1000, now=now)).issued_ms == round(now * 1000)


def test_expiry_stops_at_the_session_max_age() -> None:
    tokens = Tokens(KEY, issuer="gameserver", ttl=3600, max_age=86400)
    login = 1_700_000_000
    late = jwt.decode(tokens.issue(1, auth_time=login, now=login + 86400 - 60), options={"verify_signature": False})
    assert late["exp"] == login + 86400  # not a full ttl past the max age
    early = jwt.decode(tokens.issue(1, auth_time=login, now=login + 60), options={"verify_signature": False})
    assert early["exp"] == login + 60 + 3600


def test_a_token_from_before_auth_time_counts_from_its_iat() -> None:
    old = jwt.encode(claims(auth_time=None), KEY, algorithm="HS256")
    decoded = TOKENS.claims(old)
    assert decoded.auth_time * 1000 == decoded.issued_ms


def test_expired() -> None:
    assert refused(TOKENS.issue(1, now=time.time() - 3600 - LEEWAY - 5)) == "token expired"
    assert TOKENS.verify(TOKENS.issue(1, now=time.time() - 3600 + 60)) == 1


def claims(**changes: object) -> dict[str, object]:
    """Valid claims as of now, with ``changes`` (None removes a claim)."""
    now = int(time.time())
    base: dict[str, object] = {"sub": "5", "iat": now, "exp": now + 60, "iss": "gameserver", "auth_time": now}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


@pytest.mark.parametrize(
    "token",  # made when the test runs: tokens made at collection could expire before it
    [
        pytest.param(lambda: jwt.encode(claims(), b"x" * 32, algorithm="HS256"), id="wrong key"),
        pytest.param(lambda: jwt.encode(claims(), KEY, algorithm="HS512"), id="another algorithm"),
        pytest.param(lambda: f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}.", id="alg none"),
        pytest.param(lambda: f"{b64({'alg': 'none'})}.{b64(claims())}", id="alg none without signature part"),
        pytest.param(lambda: jwt.encode(claims(iss="other"), KEY, algorithm="HS256"), id="other issuer"),
        pytest.param(lambda: jwt.encode(claims(exp=None), KEY, algorithm="HS256"), id="no exp"),
        pytest.param(lambda: jwt.encode(claims(iat=None), KEY, algorithm="HS256"), id="no iat"),
        pytest.param(lambda: jwt.encode(claims(iss=None), KEY, algorithm="HS256"), id="no iss"),
        pytest.param(lambda: jwt.encode(claims(sub=None), KEY, algorithm="HS256"), id="no sub"),
        pytest.param(lambda: jwt.encode(claims(sub="abc"), KEY, algorithm="HS256"), id="sub not a uid"),
        pytest.param(lambda: jwt.encode(claims(sub="-5"), KEY, algorithm="HS256"), id="negative sub"),
        pytest.param(lambda: jwt.encode(claims(sub="٣"), KEY, algorithm="HS256"), id="non-ascii digit"),
        pytest.param(lambda: jwt.encode(claims(auth_time="yesterday"), KEY, algorithm="HS256"), id="auth_time text"),
        pytest.param(lambda: jwt.encode(claims(auth_time=True), KEY, algorithm="HS256"), id="auth_time boolean"),
        pytest.param(
            lambda: jwt.encode(claims(iat=int(time.time()) + 3600), KEY, algorithm="HS256"), id="issued in future"
        ),
        pytest.param(lambda: "", id="empty"),
        pytest.param(lambda: "garbage", id="garbage"),
        pytest.param(lambda: "a.b.c", id="three garbage parts"),
        pytest.param(lambda: "x" * 5000, id="too long"),
    ],
)
def test_refused(token: Callable[[], str]) -> None:
    assert refused(token()) == "invalid token"


def test_altered_payload() -> None:
    header, _, signature = TOKENS.issue(5).split(".")
    assert refused(f"{header}.{b64(claims(sub='6'))}.{signature}") == "invalid token"
