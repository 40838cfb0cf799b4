"""gameserver/storage/errors.py: which database errors are a lost lock conflict (retried, then ``unavailable``),
which mean the backend is unreachable, and which are bugs. The driver exceptions are the drivers' own classes;
the SQLite one comes from a real busy database file, the integration tests (tests/integration/test_sql.py)
check the MariaDB ones against a real server."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncmy.errors
import pytest
import redis.exceptions
import sqlalchemy.exc

from gameserver.errors import Unavailable
from gameserver.storage.errors import backend_fault, error_code, is_transient, is_unavailable
from gameserver.storage.kv import describe_redis


def mysql(
    code: int,
    message: str,
    kind: type[sqlalchemy.exc.DBAPIError] = sqlalchemy.exc.OperationalError,
    *,
    invalidated: bool = False,
) -> sqlalchemy.exc.DBAPIError:
    """What SQLAlchemy raises for an asyncmy error ``(code, message)`` answered by the server."""
    orig = asyncmy.errors.OperationalError(code, message)
    return kind("UPDATE t SET n = n + 1", {}, orig, connection_invalidated=invalidated)


def sqlite_busy(tmp_path: Path) -> sqlalchemy.exc.OperationalError:
    """A real "database is locked": a second writer that may not wait (timeout 0) for the first one's lock."""
    path = tmp_path / "busy.db"
    first = sqlite3.connect(path, isolation_level=None)
    second = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        first.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as raised:
            second.execute("BEGIN IMMEDIATE")
    finally:
        first.close()
        second.close()
    return sqlalchemy.exc.OperationalError("BEGIN IMMEDIATE", {}, raised.value)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (1213, "Deadlock found when trying to get lock; try restarting transaction"),
        (1205, "Lock wait timeout exceeded; try restarting transaction"),
        (1020, "Record has changed since last read in table 't'"),
    ],
)
def test_lost_lock_conflicts_are_transient_and_unavailable(code: int, message: str) -> None:
    exc = mysql(code, message)
    assert error_code(exc) == code
    assert is_transient(exc)
    assert is_unavailable(exc)  # after the last retry: answered `unavailable`, not `internal`


def test_sqlite_busy_is_transient(tmp_path: Path) -> None:
    exc = sqlite_busy(tmp_path)
    assert "database is locked" in str(exc)
    assert is_transient(exc) and is_unavailable(exc)


def test_sqlite_extended_busy_codes_are_transient(tmp_path: Path) -> None:
    exc = sqlite_busy(tmp_path)
    exc.orig.sqlite_errorcode = 5 | 2 << 8  # type: ignore[union-attr]  # SQLITE_BUSY_SNAPSHOT
    assert is_transient(exc)


def test_other_sqlite_errors_are_not_transient(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "x.db") as conn, pytest.raises(sqlite3.OperationalError) as raised:
        conn.execute("SELECT * FROM missing")
    exc = sqlalchemy.exc.OperationalError("SELECT * FROM missing", {}, raised.value)
    assert not is_transient(exc) and not is_unavailable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        mysql(2013, "Lost connection to MySQL server during query"),  # the commit may have happened: no retry
        mysql(2003, "Can't connect to MySQL server on '127.0.0.1'"),
        mysql(1213, "Deadlock found when trying to get lock", invalidated=True),  # the connection is gone with it
        redis.exceptions.ConnectionError("Connection refused"),
        ConnectionResetError(),
    ],
)
def test_unreachable_is_unavailable_but_not_retried(exc: BaseException) -> None:
    assert is_unavailable(exc)
    assert not is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        mysql(1062, "Duplicate entry '1' for key 'PRIMARY'", sqlalchemy.exc.IntegrityError),
        mysql(1064, "You have an error in your SQL syntax", sqlalchemy.exc.ProgrammingError),
        mysql(1146, "Table 'game.t' doesn't exist", sqlalchemy.exc.ProgrammingError),
        RuntimeError("boom"),
    ],
)
def test_answers_and_bugs_are_neither(exc: BaseException) -> None:
    assert not is_transient(exc)
    assert not is_unavailable(exc)


@pytest.mark.parametrize(
    ("url", "described"),
    [
        ("", "redis (in-process)"),
        ("redis://127.0.0.1:6380/2", "redis 127.0.0.1:6380/2"),
        ("redis://:secret@cache.internal", "redis cache.internal:6379/0"),
        ("unix:///run/redis.sock", "redis /run/redis.sock"),
    ],
)
def test_a_redis_is_described_without_its_credentials(url: str, described: str) -> None:
    assert describe_redis(url) == described


def test_a_backend_fault_is_one_line() -> None:
    assert backend_fault(TimeoutError(), 2.0) == "no answer within 2s (hung or overloaded)"
    assert backend_fault(Unavailable("unreachable: OperationalError: (2003, ...)")) == (
        "unreachable: OperationalError: (2003, ...)"
    )
    assert backend_fault(redis.exceptions.ConnectionError("Error 111\nmore")) == "ConnectionError: Error 111"
