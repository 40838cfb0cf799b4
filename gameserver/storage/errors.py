"""Which backend exceptions mean "the backend is down" (answered ``unavailable``, PROTOCOL.md "Error codes").

Only failures of reaching the backend count: refused or dropped connections, timeouts (a SQLite write lock
that stays taken included), a server shutting down or out of connections. A backend that answers with an
error (a constraint violation, bad SQL, a wrong Redis type) is a bug in the caller and stays ``internal``.
"""

from __future__ import annotations

import redis.exceptions
import sqlalchemy.exc

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

# SQLITE_BUSY, SQLITE_LOCKED: the write lock stayed taken for the whole busy timeout (``db.query_timeout``).
SQLITE_BUSY = frozenset({5, 6})


def is_unavailable(exc: BaseException) -> bool:
    """True if ``exc`` says a database or Redis could not be reached (rather than refused the request)."""
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return True
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # no pooled connection in time
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated or isinstance(exc, sqlalchemy.exc.InterfaceError):
            return True
        orig = exc.orig
        code = orig.args[0] if orig is not None and orig.args else None
        if code in MYSQL_GONE or isinstance(orig, OSError):
            return True
        if getattr(orig, "sqlite_errorcode", None) in SQLITE_BUSY:  # another writer held the lock too long
            return True
    return isinstance(exc, (ConnectionError, TimeoutError))
