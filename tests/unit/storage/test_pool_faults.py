"""gameserver/storage/sql.py's PoolFaults: SQLAlchemy's pool logs a traceback at ERROR when it cannot reset a
connection to a server that went away; that fault is handled, so it becomes one WARNING line. Anything else the
pool logs stays as it is. The records go through the real pool logger of a real engine."""

from __future__ import annotations

import logging
from pathlib import Path

import asyncmy.errors
import pytest

from gameserver.config import DbConfig
from gameserver.storage.sql import Sql


def pool_logger(tmp_path: Path) -> logging.Logger:
    db = Sql.open(DbConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'game.db'}"), tmp_path)
    pool = type(db.engine.pool)
    return logging.getLogger(f"{pool.__module__}.{pool.__name__}")


def log_reset_failure(logger: logging.Logger, exc: BaseException) -> None:
    try:
        raise exc
    except BaseException:
        logger.error("Exception during reset or similar", exc_info=True)  # as sqlalchemy/pool/base.py does


@pytest.mark.parametrize(
    "exc",
    [asyncmy.errors.OperationalError(2013, "Lost connection to MySQL server during query"), ConnectionResetError()],
    ids=["server lost", "connection reset"],
)
def test_a_lost_connection_is_one_warning_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, exc: Exception
) -> None:
    with caplog.at_level(logging.INFO):
        log_reset_failure(pool_logger(tmp_path), exc)
    [record] = caplog.records
    assert (record.levelno, record.exc_info, record.exc_text) == (logging.WARNING, None, None)
    assert record.getMessage().startswith("Exception during reset or similar (the connection is dropped): ")
    assert type(exc).__name__ in record.getMessage()


def test_other_errors_keep_their_traceback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        log_reset_failure(pool_logger(tmp_path), ValueError("a bug"))
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None
