"""Which backend exceptions mean "try again later" (answered ``unavailable``, PROTOCOL.md "Error codes").

Two kinds count. A backend that cannot be reached: refused or dropped connections, timeouts, a server shutting
down or out of connections (:func:`is_unavailable`). And a transaction that lost a lock conflict: a deadlock,
a lock wait that timed out, SQLite's write lock still taken after the busy timeout (:func:`is_transient`).
The database rolled that transaction back, so running it again is safe and usually succeeds:
:meth:`gameserver.storage.sql.Sql.run` does so; one that still fails after its retries is ``unavailable`` too.
A backend that answers with an error (a constraint violation, bad SQL, a wrong Redis type) is a bug in the
caller and stays ``internal``.
"""

from __future__ import annotations

from typing import Any

import redis.exceptions
import sqlalchemy.exc

from gameserver.errors import GameError

MAX_FAULT = 200  # characters of a backend's error kept in /healthz

# MySQL/MariaDB codes for a server that is unreachable, went away, or cannot take the connection:
# client CR_* codes (errmsg.h) and server ER_* codes.
MYSQL_GONE = frozenset(
    {
        1040,  # ER_CON_COUNT_ERROR: too many connections
        1053,  # ER_SERVER_SHUTDOWN: shutdown in progress
        1927,  # ER_CONNECTION_KILLED (MariaDB)
        2002,  # CR_CONNECTION_ERROR: socket
        2003,  # CR_CONN_HOST_ERROR: TCP connect failed
        2005,  # CR_UNKNOWN_HOST
        2006,  # CR_SERVER_GONE_ERROR
        2013,  # CR_SERVER_LOST (also asyncmy's read timeout)
        2055,  # CR_SERVER_LOST_EXTENDED
        4031,  # ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8): disconnected for inactivity
    }
)

# MySQL/MariaDB codes of a lost lock conflict, all "try restarting transaction". A deadlock rolls the whole
# transaction back; a lock wait timeout only the statement, and the rest goes when the exception leaves
# ``db.transaction()``. Not in MYSQL_GONE: the connection is fine and stays in the pool.
MYSQL_TRANSIENT = frozenset(
    {
        1020,  # ER_CHECKREAD: a row changed since the transaction's snapshot (innodb_snapshot_isolation)
        1205,  # ER_LOCK_WAIT_TIMEOUT: another transaction held the lock for innodb_lock_wait_timeout
        1213,  # ER_LOCK_DEADLOCK: InnoDB chose this transaction as the deadlock's victim
    }
)

# SQLITE_BUSY, SQLITE_LOCKED: the write lock stayed taken for the whole busy timeout (``db.query_timeout``).
SQLITE_BUSY = frozenset({5, 6})


def is_transient(exc: BaseException) -> bool:
    """True if ``exc`` says the database gave up on this transaction over another's locks (deadlock, lock wait
    timeout, SQLite busy): it was rolled back, nothing of it was written, and running it again may succeed."""
    if not isinstance(exc, sqlalchemy.exc.DBAPIError) or exc.connection_invalidated:
        return False
    sqlite_code = getattr(exc.orig, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        return (sqlite_code & 0xFF) in SQLITE_BUSY  # extended codes: SQLITE_BUSY_SNAPSHOT = 5 | 2 << 8
    return error_code(exc) in MYSQL_TRANSIENT


def is_unavailable(exc: BaseException) -> bool:
    """True if ``exc`` says a database or Redis could not serve the request now: unreachable, or a lock
    conflict (:func:`is_transient`), rather than refused it."""
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return True
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # no pooled connection in time
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated or isinstance(exc, sqlalchemy.exc.InterfaceError):
            return True
        if error_code(exc) in MYSQL_GONE or isinstance(exc.orig, OSError) or is_transient(exc):
            return True
    return isinstance(exc, (ConnectionError, TimeoutError))


def is_connection_lost(exc: BaseException) -> bool:
    """True if ``exc``, a driver's own exception or SQLAlchemy's wrapper of one, says the connection to the server
    is gone or timed out (what a pool sees when it resets a connection to a crashed server)."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        return is_unavailable(exc)
    if isinstance(exc, (OSError, TimeoutError)):
        return True
    code = exc.args[0] if exc.args else None
    return isinstance(code, int) and code in MYSQL_GONE


def backend_fault(exc: BaseException, timed_out_after: float | None = None) -> str:
    """What is wrong with a backend, in one line for ``/healthz``: ``timed_out_after`` seconds without an answer
    (a hung server), or the error it raised."""
    if timed_out_after is not None:
        return f"no answer within {timed_out_after:g}s (hung or overloaded)"
    if isinstance(exc, GameError):
        return exc.message
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:MAX_FAULT]


def error_code(exc: sqlalchemy.exc.DBAPIError) -> Any:
    """The driver's error: MySQL's error number (its first argument), or None."""
    orig = exc.orig
    return orig.args[0] if orig is not None and orig.args else None
