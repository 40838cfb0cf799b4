"""What a username, password and display name may be. Pure: each check returns the value to store or raises
:class:`BadRequest` with a message a client can show.

Usernames are login ids: ASCII letters, digits, ``_``, ``.``, ``-``, starting with a letter or digit, and
case-insensitive (stored lower-case, so SQLite and MariaDB agree on what is taken). Display names are what
other players see (chat ``name``): any printable text. Passwords may hold any character but control
characters (NIST SP 800-63B: allow spaces and Unicode, no composition rules).
"""

from __future__ import annotations

import re
import unicodedata

from gameserver.errors import BadRequest

USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9_.\-]*")
DISPLAY_NAME_MAX = 32


def canonical_username(username: str) -> str:
    """The stored form of a username: lower-case. Login looks names up in this form."""
    return username.lower()


def check_username(username: str, *, min_len: int, max_len: int) -> str:
    """The canonical username, or :class:`BadRequest` saying what a username must be."""
    name = canonical_username(username)
    if not (username.isascii() and min_len <= len(name) <= max_len and USERNAME_RE.fullmatch(name)):
        raise BadRequest(
            f"username must be {min_len}-{max_len} characters: letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str, *, min_len: int, max_len: int) -> str:
    if not min_len <= len(password) <= max_len:
        raise BadRequest(f"password must be {min_len}-{max_len} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in password):
        raise BadRequest("password must not contain control characters")
    return password


def check_display_name(name: str) -> str:
    """The display name without surrounding spaces, or :class:`BadRequest`."""
    name = name.strip()
    if not 1 <= len(name) <= DISPLAY_NAME_MAX:
        raise BadRequest(f"display_name must be 1-{DISPLAY_NAME_MAX} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in name):
        raise BadRequest("display_name must be printable text")
    return name
