"""What usernames, passwords and display names may be (gameserver/features/identity/validation.py)."""

from __future__ import annotations

import pytest

from gameserver.errors import BadRequest
from gameserver.features.identity.validation import check_display_name, check_password, check_username

USERNAME = {"min_len": 3, "max_len": 12}
PASSWORD = {"min_len": 8, "max_len": 16}


@pytest.mark.parametrize(
    ("raw", "stored"), [("alice", "alice"), ("Alice", "alice"), ("a.b-c_9", "a.b-c_9"), ("9lives", "9lives")]
)
def test_good_usernames_are_stored_lower_case(raw: str, stored: str) -> None:
    assert check_username(raw, **USERNAME) == stored


@pytest.mark.parametrize(
    "raw", ["ab", "a" * 13, "_alice", ".alice", "al ice", "al@ice", "álice", "\u212aelvin", "ali\nce", ""]
)
def test_bad_usernames(raw: str) -> None:
    with pytest.raises(BadRequest, match=r"username must be 3-12 characters: letters, digits, '_', '\.', '-'"):
        check_username(raw, **USERNAME)


@pytest.mark.parametrize("raw", ["12345678", "pass word", "пароль-пароль", "密码密码密码密码", "x" * 16])
def test_good_passwords(raw: str) -> None:
    assert check_password(raw, **PASSWORD) == raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("1234567", "password must be 8-16 characters"),
        ("x" * 17, "password must be 8-16 characters"),
        ("pass\x00word", "password must not contain control characters"),
        ("pass\nword", "password must not contain control characters"),
        ("pass\x7fword", "password must not contain control characters"),
    ],
)
def test_bad_passwords(raw: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        check_password(raw, **PASSWORD)


def test_display_names() -> None:
    assert check_display_name("  小明 ") == "小明"
    assert check_display_name("Bob the 2nd 🐉") == "Bob the 2nd 🐉"
    for bad in ("", "   ", "x" * 33, "a\u200bb", "a\x07b", "a\u202eb"):
        with pytest.raises(BadRequest, match="display_name must be"):
            check_display_name(bad)
