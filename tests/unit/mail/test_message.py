"""gameserver/features/mailbox/message.py: the file form is ASCII and gives back exactly what went in."""

from __future__ import annotations

import pytest

from enums import ItemKind, MailKind
from gameserver.errors import BadRequest
from gameserver.features.mailbox.message import Item, Mail, check_items, check_text, compose, parse

TEXTS = ["plain", "礼物 🎁 for you", "two  spaces\tand tab", "line\nbreaks\r\nkept\n", "", "é" * 500]


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip_is_exact_and_ascii(text: str) -> None:
    mail = Mail(
        MailKind.GIFT,
        42,
        "名字 ✨",
        "Subject " + text.replace("\n", " ").replace("\r", " "),
        text,
        (Item(ItemKind.COIN, 5),),
        {"note": text},
        sent_at=1_700_000_000_123,
    )
    data = compose(mail)
    data.decode("ascii")
    assert max(data) < 128
    back = parse(data, mail_id="k1", unread=False)
    assert back == Mail(**{**mail_fields(mail), "mail_id": "k1", "unread": False})


def mail_fields(mail: Mail) -> dict[str, object]:
    return {name: getattr(mail, name) for name in Mail.__dataclass_fields__}


def test_a_header_cannot_be_injected() -> None:
    mail = Mail(MailKind.PLAYER, 1, "evil\nX-Mail-Kind: 2", "s\r\nBcc: x", "b", sent_at=1)
    data = compose(mail)
    assert b"\nBcc:" not in data and b"\nX-Mail-Kind: 2" not in data
    assert parse(data).sender_name == "evil\nX-Mail-Kind: 2"


def test_not_a_mail() -> None:
    with pytest.raises(ValueError):
        parse(b"Subject: hi\n\nbody\n")


def test_check_text() -> None:
    assert check_text(" hi ", "body", max_subject=5, max_body=10) == ("hi", "body")
    for subject, body in [("", "x"), ("x" * 6, "x"), ("a\nb", "x"), ("ok", "x" * 11), (1, "x"), ("ok", "\x00")]:
        with pytest.raises(BadRequest):
            check_text(subject, body, max_subject=5, max_body=10)


def test_check_items_merges_and_validates() -> None:
    items = [{"item": 2, "count": 1}, {"item": 1, "count": 3}, {"item": 2, "count": 4}]
    assert check_items(items, max_items=5) == (Item(1, 3), Item(2, 5))
    assert check_items(None, max_items=5) == ()
    bad: list[object] = [
        "x",
        [{"item": 1}],
        [{"item": 99999, "count": 1}],
        [{"item": 1, "count": 0}],
        [{"item": 1, "count": True}],
        [{"item": "1", "count": 1}],
        [{"item": 1, "count": 1, "extra": 1}],
        [{"item": 1, "count": 2}, {"item": 2, "count": 1}, {"item": 3, "count": 1}],
    ]
    for value in bad:
        with pytest.raises(BadRequest):
            check_items(value, max_items=2)
