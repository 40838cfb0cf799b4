"""One Maildir (``tmp``, ``new``, ``cur``): blocking file operations, no asyncio.

Delivery is the Maildir way, so that a crash never leaves half a mail where a reader looks: the file is
written under ``tmp/``, flushed to disk, then renamed into ``new/`` (a rename is atomic on one file system)
and the directory is synced so the rename itself survives a power cut. Readers list only ``new/`` and
``cur/``. Reading a mail moves it from ``new/`` to ``cur/`` with the seen flag (``<key>:2,S``). Files left
in ``tmp/`` by a crashed writer are removed after :data:`TMP_MAX_AGE`, as the Maildir convention says.

Names that reach a path are checked first: world and uid are ints (world from 0, as ``auth.world``; uid
from 1), a key is ``[A-Za-z0-9][A-Za-z0-9._-]*`` (no ``/``, no ``..``); anything else is :class:`BadRequest`.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gameserver.errors import BadRequest

SUBDIRS = ("tmp", "new", "cur")
INFO = ":2,"  # Maildir "info" separator: flags follow it
SEEN = "S"
TMP_MAX_AGE = 36 * 3600.0  # seconds (the Maildir convention for abandoned tmp files)
MAX_ID = 2**63 - 1
KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

_counter = itertools.count()
_host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def check_id(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` if it is an int from ``minimum`` that fits a SQL BIGINT, else :class:`BadRequest`."""
    if type(value) is not int or not minimum <= value <= MAX_ID:
        raise BadRequest(f"{name} must be an integer from {minimum}")
    return value


def check_key(value: Any) -> str:
    """``value`` if it can be a mail's key (file name), else :class:`BadRequest`."""
    if not isinstance(value, str) or KEY_PATTERN.fullmatch(value) is None:
        raise BadRequest("mail_id is not a mail id")
    return value


def new_key() -> str:
    """A unique, sortable name: delivery time in ns first, then process, counter and host."""
    return f"{time.time_ns()}.P{os.getpid()}Q{next(_counter)}R{secrets.token_hex(3)}.{_host}"


def key_time_ns(key: str) -> int:
    """The delivery time encoded at the start of a key (0 if it has none)."""
    head = key.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


@dataclass(frozen=True, slots=True)
class Entry:
    """A mail file: its key, the subdirectory it is in and its flags."""

    key: str
    subdir: str
    flags: str
    path: Path

    @property
    def seen(self) -> bool:
        return SEEN in self.flags


def _parse_name(name: str) -> tuple[str, str] | None:
    key, sep, info = name.partition(":")
    if KEY_PATTERN.fullmatch(key) is None:
        return None  # not ours (editor backups, dot files)
    flags = info[2:] if sep and info.startswith("2,") else ""
    return key, flags


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Maildir:
    """The Maildir at ``path``; the folders are created on first delivery."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def create(self) -> None:
        for sub in SUBDIRS:
            (self.path / sub).mkdir(parents=True, exist_ok=True)

    def deliver(self, data: bytes) -> str:
        """Write one mail and return its key; the mail is visible whole or not at all."""
        self.create()
        key = new_key()
        tmp = self.path / "tmp" / key
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, self.path / "new" / key)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.path / "new")
        return key

    def entries(self) -> Iterator[Entry]:
        """Every mail in ``new/`` and ``cur/`` (``tmp/`` holds deliveries not finished: never listed)."""
        for sub in ("new", "cur"):
            folder = self.path / sub
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                continue
            for name in names:
                parsed = _parse_name(name)
                if parsed is not None:
                    yield Entry(parsed[0], sub, parsed[1] if sub == "cur" else "", folder / name)

    def find(self, key: str) -> Entry | None:
        """The mail with ``key``, wherever it is; None if there is none."""
        check_key(key)
        new = self.path / "new" / key
        if new.exists():
            return Entry(key, "new", "", new)
        for flags in ("S", ""):  # the names this module writes, before a full scan for other flags
            cur = self.path / "cur" / f"{key}{INFO}{flags}"
            if cur.exists():
                return Entry(key, "cur", flags, cur)
        for entry in self.entries():
            if entry.key == key:
                return entry
        return None

    def read(self, entry: Entry) -> bytes:
        return entry.path.read_bytes()

    def mark_seen(self, entry: Entry) -> Entry:
        """Move the mail to ``cur/`` with the seen flag; a no-op if it is there already."""
        if entry.subdir == "cur" and entry.seen:
            return entry
        flags = "".join(sorted(set(entry.flags) | {SEEN}))
        target = self.path / "cur" / f"{entry.key}{INFO}{flags}"
        os.rename(entry.path, target)
        return Entry(entry.key, "cur", flags, target)

    def remove(self, entry: Entry) -> None:
        os.unlink(entry.path)

    def clean_tmp(self, now: float | None = None) -> int:
        """Remove files a crashed writer left in ``tmp/`` more than :data:`TMP_MAX_AGE` ago; returns how many."""
        now = time.time() if now is None else now
        removed = 0
        try:
            names = os.listdir(self.path / "tmp")
        except FileNotFoundError:
            return 0
        for name in names:
            path = self.path / "tmp" / name
            with suppress(FileNotFoundError):
                if now - path.stat().st_mtime > TMP_MAX_AGE:
                    path.unlink()
                    removed += 1
        return removed
