"""A mail as a value, and its file form: an RFC 5322 message that is pure ASCII on disk (seed 003).

Headers that may hold any text (subject, sender name) are RFC 2047 encoded-words; the body is a UTF-8
``text/plain`` part in base64; the metadata (kind, sender, subject, gift items, kind-specific data) rides in
an ``application/json`` part of ASCII JSON. Parsing gives back exactly the strings that went in.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from typing import Any

from enums import ItemKind, MailKind
from gameserver.errors import BadRequest

SYSTEM = 0
"""The sender uid of mail sent by the game itself (admin route, system notices)."""

MAX_COUNT = 1_000_000_000
_WRITE_POLICY = policy.default.clone(utf8=False, linesep="\n", max_line_length=78)
_READ_POLICY = policy.default


@dataclass(frozen=True, slots=True)
class Item:
    item: int
    count: int

    def as_dict(self) -> dict[str, int]:
        return {"item": self.item, "count": self.count}


@dataclass(frozen=True, slots=True)
class Mail:
    """One mail. ``mail_id`` is empty until the store delivers it; ``unread`` comes from the Maildir."""

    kind: MailKind
    sender: int
    sender_name: str
    subject: str
    body: str = ""
    items: tuple[Item, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)
    sent_at: int = 0  # ms since the epoch
    mail_id: str = ""
    unread: bool = True

    def summary(self) -> dict[str, Any]:
        """What ``mail.list`` and the ``mail.new`` push show: everything but the body."""
        return {
            "mail_id": self.mail_id,
            "kind": int(self.kind),
            "from": self.sender,
            "from_name": self.sender_name,
            "subject": self.subject,
            "unread": self.unread,
            "sent_at": self.sent_at,
            "items": [item.as_dict() for item in self.items],
            **({"data": self.data} if self.data else {}),
        }

    def full(self) -> dict[str, Any]:
        return {**self.summary(), "body": self.body}

    def stamped(self) -> Mail:
        """This mail with ``sent_at`` set to now if it has none."""
        return self if self.sent_at else replace(self, sent_at=time.time_ns() // 1_000_000)


def _one_line(text: str) -> str:
    # A header holds one line: a CR or LF would end it (and could inject another header).
    return " ".join(text.splitlines())


def compose(mail: Mail) -> bytes:
    """The file form of ``mail``: ASCII only.

    The headers (encoded-words) are for people and mail tools looking at the Maildir; the JSON part is
    what :func:`parse` reads, because header folding may change runs of spaces in a subject.
    """
    msg = EmailMessage(policy=_WRITE_POLICY)
    msg["Subject"] = _one_line(mail.subject)
    msg["Date"] = format_datetime(datetime.fromtimestamp(mail.sent_at / 1000, UTC))
    msg["X-Mail-Kind"] = str(int(mail.kind))
    msg["X-Sender-Uid"] = str(mail.sender)
    msg["X-Sender-Name"] = _one_line(mail.sender_name)
    # Bytes, not str: set_content would normalise line ends and add a final newline to text.
    msg.set_content(mail.body.encode("utf-8"), maintype="text", subtype="plain", cte="base64")
    msg.set_param("charset", "utf-8")
    meta = {
        "kind": int(mail.kind),
        "from": mail.sender,
        "from_name": mail.sender_name,
        "subject": mail.subject,
        "sent_at": mail.sent_at,
        "items": [item.as_dict() for item in mail.items],
        "data": mail.data,
    }
    payload = json.dumps(meta, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    msg.add_attachment(payload, maintype="application", subtype="json", filename="mail.json")
    data = msg.as_bytes(policy=_WRITE_POLICY)
    data.decode("ascii")  # the Maildir holds ASCII only (seed 003); raises if the email package let one slip
    return data


def parse(data: bytes, *, mail_id: str = "", unread: bool = True) -> Mail:
    """The :class:`Mail` in ``data`` as written by :func:`compose`.

    Raises:
        ValueError: ``data`` is not such a mail.
    """
    msg = BytesParser(policy=_READ_POLICY).parsebytes(data)
    assert isinstance(msg, EmailMessage)
    body_part = msg.get_body(("plain",))
    body = body_part.get_content() if body_part is not None else ""
    meta: dict[str, Any] | None = None
    for part in msg.iter_attachments():
        if isinstance(part, EmailMessage) and part.get_content_type() == "application/json":
            meta = json.loads(part.get_content())
    if not isinstance(meta, dict):
        raise ValueError("not a gameserver mail: no JSON part")
    return Mail(
        kind=MailKind(int(meta["kind"])),
        sender=int(meta["from"]),
        sender_name=str(meta["from_name"]),
        subject=str(meta["subject"]),
        body=body,
        items=tuple(Item(int(i["item"]), int(i["count"])) for i in meta.get("items", ())),
        data=dict(meta.get("data") or {}),
        sent_at=int(meta["sent_at"]),
        mail_id=mail_id,
        unread=unread,
    )


def check_text(subject: Any, body: Any, *, max_subject: int, max_body: int) -> tuple[str, str]:
    """A subject and body a mail can carry, else :class:`BadRequest` saying what is wrong."""
    if not isinstance(subject, str) or not isinstance(body, str):
        raise BadRequest("subject and body must be strings")
    subject = subject.strip()
    if not subject:
        raise BadRequest("subject must not be empty")
    if len(subject) > max_subject:
        raise BadRequest(f"subject must be at most {max_subject} characters")
    if any(ch in subject for ch in "\r\n\x00"):
        raise BadRequest("subject must be one line")
    if len(body) > max_body:
        raise BadRequest(f"body must be at most {max_body} characters")
    if "\x00" in body:
        raise BadRequest("body must not contain NUL")
    return subject, body


def check_items(items: Any, *, max_items: int) -> tuple[Item, ...]:
    """Gift items ``[{"item": <ItemKind>, "count": n}]`` merged by kind, else :class:`BadRequest`."""
    if items is None:
        return ()
    if not isinstance(items, list):
        raise BadRequest('items must be a list of {"item", "count"}')
    merged: dict[int, int] = {}
    for entry in items:
        if not isinstance(entry, dict) or set(entry) != {"item", "count"}:
            raise BadRequest('each item must be {"item": <id>, "count": <n>}')
        kind, count = entry["item"], entry["count"]
        if type(kind) is not int or kind not in ItemKind._value2member_map_:
            raise BadRequest(f"item {kind!r} is not an ItemKind")
        if type(count) is not int or not 0 < count <= MAX_COUNT:
            raise BadRequest(f"count must be an integer from 1 to {MAX_COUNT}")
        merged[kind] = merged.get(kind, 0) + count
    if len(merged) > max_items:
        raise BadRequest(f"a mail carries at most {max_items} kinds of item")
    if any(count > MAX_COUNT for count in merged.values()):
        raise BadRequest(f"count must be an integer from 1 to {MAX_COUNT}")
    return tuple(Item(kind, count) for kind, count in sorted(merged.items()))
