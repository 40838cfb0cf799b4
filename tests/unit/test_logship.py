"""Log shipping without a loop or a store: what a record becomes, the bounded buffer, and the console's filters."""

from __future__ import annotations

import logging

import pytest

from gameserver.features.admin.accounts import Role
from gameserver.features.admin.browse import MASK, _shown, is_secret
from gameserver.logship import BUFFER, LogFilter, LogShipper


def record(name: str, level: int, msg: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord(name, level, __file__, 1, msg, (), None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def shipper() -> LogShipper:
    return LogShipper(None, "gs:logs", node="n1", max_len=100)  # type: ignore[arg-type]  # never written here


def test_a_record_becomes_a_flat_entry_with_its_node_and_fields() -> None:
    ship = shipper()
    ship.handle(record("modules.mail", logging.WARNING, "uid=3 mailbox full", cid="n1-4-2", uid=3, fn="mail.send"))
    [entry] = ship.buffer
    assert {k: v for k, v in entry.items() if k != "ts"} == {
        "node": "n1",
        "level": "warning",
        "logger": "modules.mail",
        "msg": "uid=3 mailbox full",
        "cid": "n1-4-2",
        "uid": "3",
        "fn": "mail.send",
    }


def test_below_its_level_and_its_own_records_are_not_shipped() -> None:
    ship = shipper()
    for name, level in (("gameserver.app", logging.DEBUG), ("gameserver.logship", logging.WARNING)):
        logger = logging.Logger(name, logging.DEBUG)  # outside the logging tree: only this handler
        logger.addHandler(ship)
        logger.log(level, "not shipped")
    assert list(ship.buffer) == []


def test_a_full_buffer_drops_the_oldest_and_counts_them() -> None:
    ship = shipper()
    for n in range(BUFFER + 3):
        ship.handle(record("x", logging.INFO, f"line {n}"))
    assert (len(ship.buffer), ship.dropped) == (BUFFER, 3)
    assert ship.buffer[0]["msg"] == "line 3"


ENTRY = {"node": "n1", "level": "warning", "logger": "modules.mail.jobs", "msg": "uid 12 got 3 mails", "cid": "n1-7-9"}


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        ({}, True),
        ({"node": "n1"}, True),
        ({"node": "n2"}, False),
        ({"level": "info"}, True),
        ({"level": "warning"}, True),
        ({"level": "error"}, False),
        ({"module": "modules.mail"}, True),
        ({"module": "modules.mail.jobs"}, True),
        ({"module": "modules.ma"}, False),  # a logger and those under it, not any prefix
        ({"uid": "12"}, True),  # "uid 12" in the message
        ({"uid": "1"}, False),
        ({"cid": "n1-7"}, True),
        ({"cid": "n1-8"}, False),
        ({"text": "3 mails"}, True),
        ({"text": "4 mails"}, False),
    ],
)
def test_filters(query: dict[str, str], matches: bool) -> None:
    assert LogFilter.of(query).matches(ENTRY) is matches


def test_a_uid_field_matches_exactly() -> None:
    assert LogFilter.of({"uid": "5"}).matches({**ENTRY, "msg": "x", "uid": "5"})
    assert not LogFilter.of({"uid": "5"}).matches({**ENTRY, "msg": "x", "uid": "55"})


@pytest.mark.parametrize("query", [{"level": "loud"}, {"uid": "abc"}])
def test_bad_filters_are_refused(query: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        LogFilter.of(query)


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.allows(Role.MODERATOR) and Role.MODERATOR.allows(Role.VIEWER)
    assert not Role.VIEWER.allows(Role.MODERATOR) and not Role.MODERATOR.allows(Role.ADMIN)


def test_secret_columns_are_masked() -> None:
    assert is_secret("password_hash") and is_secret("api_secret") and not is_secret("username")
    assert _shown("password_hash", "$argon2id$...") == MASK
    assert _shown("password_hash", None) is None
