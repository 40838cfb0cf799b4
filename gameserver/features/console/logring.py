"""The console's tail of recent log lines: a logging handler that keeps the last N records in memory."""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from gameserver.logs import CorrelationFilter

MAX_EXC_CHARS = 4000


class LogRing(logging.Handler):
    """Keeps the last ``capacity`` records as dicts, numbered so that a reader can ask for what is new."""

    def __init__(self, capacity: int, level: int | str = logging.NOTSET) -> None:
        super().__init__(level)
        self.lines: deque[dict[str, Any]] = deque(maxlen=capacity)
        self.seq = 0
        self.addFilter(CorrelationFilter())

    def emit(self, record: logging.LogRecord) -> None:  # called under self.lock
        try:
            entry: dict[str, Any] = {
                "seq": self.seq + 1,
                "ts": round(record.created, 3),
                "level": record.levelname.lower(),
                "logger": record.name,
                "msg": record.getMessage(),
            }
            cid = getattr(record, "cid", None)
            if cid:
                entry["cid"] = cid
            if record.exc_info:
                entry["exc"] = logging.Formatter().formatException(record.exc_info)[-MAX_EXC_CHARS:]
        except Exception:
            self.handleError(record)
            return
        self.seq += 1
        self.lines.append(entry)

    def since(self, after: int, limit: int) -> list[dict[str, Any]]:
        """The records numbered above ``after``, the newest ``limit`` of them."""
        with self.lock:  # type: ignore[union-attr]  # always set by Handler.__init__
            fresh = [line for line in self.lines if line["seq"] > after]
        return fresh[-limit:]
