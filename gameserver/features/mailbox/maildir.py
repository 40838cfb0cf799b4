"""One Maildir (``tmp``, ``new``, ``cur``): blocking file operations, no asyncio.

Delivery is the Maildir way, so that a crash never leaves half a mail where a reader looks: the file is
written under ``tmp/``, flushed to disk, then renamed into ``new/`` (a rename is atomic on one file system)
and the directory is synced so the rename itself survives a power cut. Readers list only ``new/`` and
``cur/``. Reading a mail moves it from ``new/`` to ``cur/`` with the seen flag (``<key>:2,S``). Files left
in ``tmp/`` by a crashed writer are removed after :data:`TMP_MAX_AGE`, as the Maildir convention says.

Names that reach a path are checked first: world and uid are ints (world from 0, as ``auth.world``; uid
from 1), a key is ``[A-Za-z0-9][A-Za-z0-9._-]*`` (no ``/``, no ``..``); anything else is :class:`BadRequest`.

The number of mails is kept in :data:`COUNT_FILE` beside ``tmp``/``new``/``cur`` (Maildir readers look only
in those three, as with Maildir++'s ``maildirsize``), so that a capped delivery needs no directory scan.
Everything that changes the number (delivery, removal) holds the box's lock: ``flock`` on that file for other
processes, and a thread lock for this process's threads (on NFS, Linux turns ``flock`` into POSIX locks,
which belong to the process, not to the open file). The count is written before a delivery's rename and
after a removal's unlink, so a crash in between leaves it too high, never too low; a count that says
"full" is checked by a scan before anything is refused, and a count that is missing or unreadable is
rebuilt by one. :meth:`Maildir.listing` (which scans anyway) writes back what it found.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gameserver.errors import BadRequest
from gameserver.features.mailbox.errors import MailboxFull

SUBDIRS = ("tmp", "new", "cur")
INFO = ":2,"  # Maildir "info" separator: flags follow it
SEEN = "S"
TMP_MAX_AGE = 36 * 3600.0  # seconds (the Maildir convention for abandoned tmp files)
MAX_ID = 2**63 - 1
KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
TAG_MARK = "I"  # a key "<ns>.I<tag>": delivered once per tag (deliver_tagged)
COUNT_FILE = "mailcount"  # the number of mails in new/ and cur/, ASCII digits; also the box's lock file
LOCK_STRIPES = 64  # thread locks shared by all boxes of the process, picked by the box's path

_counter = itertools.count()
_host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_thread_locks = tuple(threading.Lock() for _ in range(LOCK_STRIPES))


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


def _read_count(fd: int) -> int | None:
    """The count in the locked count file; None if it is empty or not a count (a crash mid-write)."""
    text = os.pread(fd, 32, 0)
    if not text.endswith(b"\n") or not text[:-1].isdigit():
        return None
    return int(text)


def _write_count(fd: int, count: int) -> None:
    text = f"{count}\n".encode()
    os.pwrite(fd, text, 0)
    os.ftruncate(fd, len(text))


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

    def deliver(self, data: bytes, *, limit: int | None = None) -> str:
        """Write one mail and return its key; the mail is visible whole or not at all.

        Raises:
            MailboxFull: ``limit`` is given and the box holds that many mails already; nothing is left behind.
        """
        key = new_key()
        self._deliver(data, key, limit=limit, once=False)
        return key

    def deliver_once(self, data: bytes, key: str) -> bool:
        """Write one mail under ``key`` unless the box holds a mail with that key already (a delivery done again,
        such as a broadcast batch retried by its job); True if it was written now. Never capped, as system mail.

        The check and the rename happen under the box's lock, so two deliveries of one key leave one mail. A mail
        the player deleted in between is delivered again; its gift still cannot be claimed twice (``mail_claims``
        is keyed by the mail's id, which is ``key``).
        """
        check_key(key)
        return self._deliver(data, key, limit=None, once=True)

    def deliver_tagged(self, data: bytes, tag: str, *, limit: int | None = None) -> tuple[str, bool]:
        """Write one mail under a new key marked with ``tag`` unless the box holds a mail with that tag already (the
        same request run again: an idempotency key's :meth:`~gameserver.dispatch.idempotency.Call.tag`); returns
        the mail's key and whether it was written now. The key keeps the delivery time first, so the mail sorts as
        any other.

        Raises:
            MailboxFull: as :meth:`deliver`, for a mail written now.
        """
        key = f"{time.time_ns()}.{TAG_MARK}{tag}"
        check_key(key)
        return self._deliver_tagged(data, key, tag, limit)

    def _deliver_tagged(self, data: bytes, key: str, tag: str, limit: int | None) -> tuple[str, bool]:
        found: list[str] = []
        written = self._deliver(data, key, limit=limit, once=False, existing=lambda: self._tagged(tag, found))
        return (key, True) if written else (found[0], False)

    def _tagged(self, tag: str, found: list[str]) -> bool:
        mark = f".{TAG_MARK}{tag}"
        for entry in self.entries():
            if entry.key.endswith(mark):
                found.append(entry.key)
                return True
        return False

    def _deliver(
        self, data: bytes, key: str, *, limit: int | None, once: bool, existing: Callable[[], bool] | None = None
    ) -> bool:
        self.create()
        tmp = self.path / "tmp" / new_key()  # unique even when ``key`` is not: two writers of one key never meet here
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            with self._locked() as lock:  # the slow part (writing, fsync) is done: hold the lock briefly
                if (once and self.find(key) is not None) or (existing is not None and existing()):
                    os.unlink(tmp)
                    return False
                count = _read_count(lock)
                if limit is not None and (count is None or count >= limit):
                    count = self._count()  # trust a "full" only once a scan confirms it
                    if count >= limit:
                        _write_count(lock, count)
                        raise MailboxFull()
                if count is None:
                    count = self._count()
                _write_count(lock, count + 1)  # before the rename: a crash leaves the count high, not low
                os.rename(tmp, self.path / "new" / key)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.path / "new")
        return True

    def count(self) -> int:
        """How many mails the box holds, from :data:`COUNT_FILE` (rebuilt by a scan if missing or unreadable)."""
        if not self.path.is_dir():
            return 0
        with self._locked() as lock:
            count = _read_count(lock)
            if count is None:
                count = self._count()
                _write_count(lock, count)
            return count

    def listing(self) -> list[Entry]:
        """Every mail in ``new/`` and ``cur/``, listed under the lock; the count is corrected to match."""
        if not self.path.is_dir():
            return []
        with self._locked() as lock:
            entries = list(self.entries())
            count = len({entry.key for entry in entries})
            if _read_count(lock) != count:
                _write_count(lock, count)
        return entries

    def _count(self) -> int:
        # By key: a mail moved from new/ to cur/ between the two listings would otherwise count twice.
        return len({entry.key for entry in self.entries()})

    @contextmanager
    def _locked(self) -> Iterator[int]:
        """The box's lock; yields the count file's descriptor."""
        with _thread_locks[hash(self.path) % LOCK_STRIPES]:
            fd = os.open(self.path / COUNT_FILE, os.O_RDWR | os.O_CREAT, 0o640)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield fd
            finally:
                os.close(fd)  # releases the flock

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
        with self._locked() as lock:
            count = _read_count(lock)
            os.unlink(entry.path)
            # After the unlink: a crash leaves the count high, not low. Unknown: rebuilt by a scan now.
            _write_count(lock, count - 1 if count else self._count())

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
