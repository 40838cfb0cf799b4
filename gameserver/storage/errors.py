"""Which backend exceptions mean "the backend is down" (answered ``unavailable``, PROTOCOL.md)."""

from __future__ import annotations

import redis.exceptions
import sqlalchemy.exc

# MySQL client errors for a server that is unreachable or went away (CR_* in errmsg.h).
_MYSQL_GONE = {2002, 2003, 2005, 2006, 2013, 2055}


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return True
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # no pooled connection in time
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated or isinstance(exc, sqlalchemy.exc.InterfaceError):
            return True
        orig = exc.orig
        code = orig.args[0] if orig is not None and orig.args else None
        if code in _MYSQL_GONE or isinstance(orig, OSError):
            return True
    return isinstance(exc, (ConnectionError, TimeoutError))
