"""``[modules.mail]``: the ``mail.*`` functions' settings (the Maildir store's own are in ``[mail]``)."""

from __future__ import annotations

from dataclasses import dataclass

from gameserver.config import Config, setting


@dataclass(frozen=True, slots=True)
class MailSettings:
    page_size: int = setting(20, min=1, max=100)
    send_rate: int = setting(10, min=1)
    send_window: float = setting(60.0, min=1)
    broadcast_batch: int = setting(500, min=1, max=100_000)


def settings(config: Config) -> MailSettings:
    return config.module("mail", MailSettings)
