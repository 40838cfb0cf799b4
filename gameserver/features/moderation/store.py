"""Mutes, bans, player reports and the moderation log, kept in Redis so that every process sees them.

A mute or ban is one key per player holding ``{"until", "reason", "by", "at"}`` (``until`` in ms since the epoch,
None for a permanent one) and expiring with it, so nothing has to lift it. Reports are a hash by id plus a sorted
set of the open ones. Every action is appended to a capped stream with who did it (:meth:`Moderation.history`).
A mute change is also published on ``mod.changed`` (:meth:`Keys.moderation_changes`) for the chat edges, which
check mutes without a round trip per line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from enums.errors import ModerationErrorCode
from gameserver.errors import BadRequest, GameError, RateLimited
from gameserver.keys import Keys

MAX_REASON = 500
MAX_REPORT_TEXT = 2000


def now_ms() -> int:
    return int(time.time() * 1000)


class ReportNotFound(GameError):
    code = ModerationErrorCode.REPORT_NOT_FOUND
    message = "no such report"
    status = 404


class Banned(GameError):
    """A banned player's login or bind."""

    code = ModerationErrorCode.BANNED
    message = "banned"
    status = 403

    def __init__(self, sanction: Sanction) -> None:
        until = "until lifted" if sanction.until is None else f"until {sanction.until} (ms since the epoch)"
        super().__init__(f"banned {until}: {sanction.reason}" if sanction.reason else f"banned {until}")


@dataclass(frozen=True, slots=True)
class Sanction:
    """A mute or a ban: in force until ``until`` (ms; None: until lifted)."""

    until: int | None
    reason: str
    by: str
    at: int

    def as_dict(self) -> dict[str, Any]:
        return {"until": self.until, "reason": self.reason, "by": self.by, "at": self.at}

    @classmethod
    def parse(cls, raw: Any) -> Sanction | None:
        if raw is None:
            return None
        data = json.loads(raw)
        return cls(data["until"], data["reason"], data["by"], data["at"])

    def active(self, now: int) -> bool:
        return self.until is None or self.until > now


class Moderation:
    """The ``moderation`` resource.

    Args:
        redis: where sanctions, reports and the log live.
        keys: their names.
        publish: the bus's publish, to tell chat edges about mute changes.
        log_max: entries the moderation log keeps (older ones are trimmed).
        report_rate: reports one player may file per ``report_window`` seconds.
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        publish: Callable[[str, bytes], None],
        *,
        log_max: int = 10_000,
        report_rate: int = 10,
        report_window: float = 3600.0,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.publish = publish
        self.log_max = log_max
        self.report_rate = report_rate
        self.report_window = report_window

    # Sanctions ------------------------------------------------------------------------------------------

    async def mute(self, uid: int, *, seconds: float | None, reason: str, by: str) -> Sanction:
        """Refuse ``uid``'s chat lines for ``seconds`` (None: until unmuted)."""
        sanction = await self._set(self.keys.mute(uid), seconds, reason, by)
        await self.record("mute", by, uid, {"seconds": seconds, "reason": reason})
        self._changed(uid, sanction)
        return sanction

    async def unmute(self, uid: int, *, by: str) -> bool:
        """Lift ``uid``'s mute; False if there was none."""
        lifted = bool(await self.redis.delete(self.keys.mute(uid)))
        await self.record("unmute", by, uid, {"lifted": lifted})
        self._changed(uid, None)
        return lifted

    async def ban(self, uid: int, *, seconds: float | None, reason: str, by: str) -> Sanction:
        """Refuse ``uid``'s logins and binds for ``seconds`` (None: until unbanned). The caller revokes their
        tokens, which closes their connections."""
        sanction = await self._set(self.keys.ban(uid), seconds, reason, by)
        await self.record("ban", by, uid, {"seconds": seconds, "reason": reason})
        return sanction

    async def unban(self, uid: int, *, by: str) -> bool:
        lifted = bool(await self.redis.delete(self.keys.ban(uid)))
        await self.record("unban", by, uid, {"lifted": lifted})
        return lifted

    async def muted(self, uid: int) -> Sanction | None:
        return self._live(Sanction.parse(await self.redis.get(self.keys.mute(uid))))

    async def banned(self, uid: int) -> Sanction | None:
        return self._live(Sanction.parse(await self.redis.get(self.keys.ban(uid))))

    async def _set(self, key: str, seconds: float | None, reason: str, by: str) -> Sanction:
        if seconds is not None and seconds <= 0:
            raise BadRequest("seconds must be positive, or absent for a permanent sanction")
        if len(reason) > MAX_REASON:
            raise BadRequest(f"reason: expected at most {MAX_REASON} characters")
        at = now_ms()
        until = None if seconds is None else at + int(seconds * 1000)
        sanction = Sanction(until, reason, by, at)
        raw = json.dumps(sanction.as_dict())
        if seconds is None:
            await self.redis.set(key, raw)
        else:
            await self.redis.set(key, raw, px=int(seconds * 1000))
        return sanction

    @staticmethod
    def _live(sanction: Sanction | None) -> Sanction | None:
        return sanction if sanction is not None and sanction.active(now_ms()) else None

    def _changed(self, uid: int, mute: Sanction | None) -> None:
        body = {"uid": uid, "mute": None if mute is None else mute.as_dict()}
        self.publish(self.keys.moderation_changes(), json.dumps(body).encode())

    # Reports --------------------------------------------------------------------------------------------

    async def report(
        self, reporter: int, *, channel: str, line: str, uid: int | None, text: str | None, reason: str
    ) -> int:
        """File a player's report of chat line ``line``; returns its id.

        Raises:
            BadRequest: the reason is too long.
            RateLimited: ``reporter`` filed ``report_rate`` reports in the current window.
        """
        if len(reason) > MAX_REASON:
            raise BadRequest(f"reason: expected at most {MAX_REASON} characters")
        counter = self.keys.reports_sent(reporter)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(counter, 0, px=int(self.report_window * 1000), nx=True)
            pipe.incr(counter)
            _, filed = await pipe.execute()
        if int(filed) > self.report_rate:
            raise RateLimited(f"at most {self.report_rate} reports per {self.report_window:g} seconds")
        report_id = int(await self.redis.incr(self.keys.report_ids()))
        at = now_ms()
        body = {
            "id": report_id,
            "reporter": reporter,
            "channel": channel,
            "line": line,
            "uid": uid,
            "text": None if text is None else text[:MAX_REPORT_TEXT],
            "reason": reason,
            "at": at,
            "status": "open",
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.reports(), str(report_id), json.dumps(body))
            pipe.zadd(self.keys.reports_open(), {str(report_id): at})
            await pipe.execute()
        await self.record("report", f"uid:{reporter}", uid, {"report": report_id, "line": line})
        return report_id

    async def reports(self, *, status: str = "open", limit: int = 100) -> list[dict[str, Any]]:
        """Reports, oldest first: the open ones, or every one (``status="all"``)."""
        if status == "open":
            ids: list[Any] = await self.redis.zrange(self.keys.reports_open(), 0, limit - 1)
            raws = await self.redis.hmget(self.keys.reports(), ids) if ids else []
        else:
            raws = list((await self.redis.hgetall(self.keys.reports())).values())
        found = [json.loads(raw) for raw in raws if raw is not None]
        found.sort(key=lambda report: report["id"])
        return found[:limit]

    async def resolve(self, report_id: int, *, by: str, note: str = "") -> dict[str, Any]:
        """Close a report with a note; raises :class:`ReportNotFound`."""
        raw = await self.redis.hget(self.keys.reports(), str(report_id))
        if raw is None:
            raise ReportNotFound()
        report = json.loads(raw)
        report.update(status="resolved", resolved_by=by, resolved_at=now_ms(), note=note[:MAX_REASON])
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.reports(), str(report_id), json.dumps(report))
            pipe.zrem(self.keys.reports_open(), str(report_id))
            await pipe.execute()
        await self.record("resolve", by, report.get("uid"), {"report": report_id, "note": note})
        return dict(report)

    # The log --------------------------------------------------------------------------------------------

    async def record(self, action: str, by: str, uid: int | None, details: dict[str, Any]) -> None:
        entry = {"action": action, "by": by, "uid": uid, "at": now_ms(), **details}
        await self.redis.xadd(
            self.keys.moderation_log(), {"entry": json.dumps(entry)}, maxlen=self.log_max, approximate=True
        )

    async def history(self, *, limit: int = 100, uid: int | None = None) -> list[dict[str, Any]]:
        """The latest moderation actions, newest first (of one player with ``uid``)."""
        entries: Any = await self.redis.xrevrange(self.keys.moderation_log(), count=limit if uid is None else None)
        found = []
        for _, fields in entries:
            entry = json.loads(fields["entry"])
            if uid is None or entry.get("uid") == uid:
                found.append(entry)
            if len(found) >= limit:
                break
        return found
