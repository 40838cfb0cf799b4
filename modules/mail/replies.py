"""What ``mail.*`` answers (the typed client SDKs read these: ``gameserver sdk``)."""

from typing import Any, NotRequired, TypedDict

from enums import ItemKind, MailKind


class MailItem(TypedDict):
    item: ItemKind
    count: int


# `from` is a Python keyword: the functional form names it.
MailSummary = TypedDict(
    "MailSummary",
    {
        "mail_id": str,
        "kind": MailKind,
        "from": int,
        "from_name": str,
        "subject": str,
        "unread": bool,
        "sent_at": int,  # ms since the epoch
        "items": list[MailItem],
        "data": NotRequired[dict[str, Any]],
        "claimed": NotRequired[bool],  # only for a mail with items
    },
)


class MailFull(MailSummary):
    body: str


class MailPage(TypedDict):
    mails: list[MailSummary]
    unread: int
    total: int
    page: int
    size: int


class MailId(TypedDict):
    mail_id: str


class MailClaimed(TypedDict):
    mail_id: str
    items: list[MailItem]
