"""``POST /mail/broadcast`` end to end, in-process: the admin route enqueues ``mail.broadcast``, batches of
``modules.mail.broadcast_batch`` players run as background jobs, and every player's mailbox has the mail exactly once,
also when a batch runs again."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from enums import MailKind
from gameserver.app import App
from gameserver.features.identity.accounts import create_account
from gameserver.features.jobs import Jobs
from gameserver.features.mailbox import MailStore
from gameserver.features.mailbox.broadcast import JOB, mail_id
from gameserver.features.mailbox.maildir import Maildir, key_time_ns
from tests.clients import TcpClient, http_url
from tests.server.test_jobs import settled

ADMIN_KEY = "test-admin-key-0123456789"
BATCH = 2
GIFT = [{"item": 1, "count": 100}]


@pytest.fixture
async def app(app_factory: Callable[..., Any]) -> App:
    started: App = await app_factory(
        mail={"admin_key": ADMIN_KEY},
        modules={"mail": {"broadcast_batch": BATCH}},
        jobs={"poll": 0.02, "backoff": 0.01},
    )
    return started


async def players(app: App, count: int, world: int = 1) -> list[int]:
    """Accounts made directly in the database (no password hashing: these players never log in)."""
    async with app.resources.db.transaction() as tx:
        return [
            await create_account(
                tx, username=f"p{world}x{n}", password_hash="-", display_name=f"Player {n}", world=world
            )
            for n in range(count)
        ]


async def broadcast(
    session: aiohttp.ClientSession, app: App, body: dict[str, Any], key: str | None = ADMIN_KEY
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with session.post(http_url(app, "/mail/broadcast"), data=json.dumps(body), headers=headers) as response:
        return response.status, await response.json()


async def mails_of(store: MailStore, world: int, uid: int) -> list[dict[str, Any]]:
    page = await store.page(world, uid, 0, 100)
    return [mail.summary() for mail in page.mails]


async def test_a_broadcast_reaches_every_player_once(app: App, client_session: aiohttp.ClientSession) -> None:
    online = await TcpClient.open(app.ports["gate-tcp"])
    registered = await online.call("auth.register", {"username": "online", "password": "correct horse battery"})
    assert registered["ok"], registered
    first = registered["data"]["uid"]
    uids = [first, *await players(app, 4)]  # 5 players: batches of 2, 2 and 1
    elsewhere = await players(app, 1, world=2)
    store: MailStore = app.resources.extra["mail"]
    jobs: Jobs = app.resources.extra["jobs"]

    status, answer = await broadcast(
        client_session, app, {"subject": "Season 2 🎉", "body": "Thanks for playing", "items": GIFT}
    )
    assert status == 202 and answer["queued"] is True
    expected = mail_id(answer["broadcast_id"], 0).split(".", 1)[1]  # the id's tail: .B<broadcast id>
    push = await online.recv()  # the online player is told, as for any mail
    assert push["event"] == "mail.new" and push["data"]["mail_id"].endswith(expected)
    the_id = push["data"]["mail_id"]

    async def everyone_has_it() -> bool:
        boxes = [await mails_of(store, 1, uid) for uid in uids] + [await mails_of(store, 2, elsewhere[0])]
        return all(len(box) == 1 for box in boxes)

    async with asyncio.timeout(10):
        while not await everyone_has_it():
            await asyncio.sleep(0.01)
    await settled(jobs)
    for world, uid in [*((1, uid) for uid in uids), (2, elsewhere[0])]:
        [mail] = await mails_of(store, world, uid)
        assert mail["mail_id"] == the_id and mail["kind"] == MailKind.GIFT and mail["from"] == 0
        assert (mail["subject"], mail["items"]) == ("Season 2 🎉", GIFT)

    # A batch run again (a retry, a reclaimed job) delivers nothing twice, and fans out no second next batch.
    sent_at = key_time_ns(the_id) // 1_000_000
    message = {"kind": int(MailKind.GIFT), "from_name": "System", "subject": "Season 2 🎉", "body": "x", "items": GIFT}
    await jobs.enqueue(JOB, answer["broadcast_id"], message, sent_at, None, 0)
    await settled(jobs)
    assert all([len(await mails_of(store, 1, uid)) == 1 for uid in uids])

    # The gift is claimed once, whatever the number of deliveries.
    token = registered["data"]["token"]
    claimed = await online.call("mail.claim", {"mail_id": the_id}, token=token)
    again = await online.call("mail.claim", {"mail_id": the_id}, token=token)
    assert claimed["ok"] and again["error"]["code"] == "already_claimed"
    await online.close()


async def test_a_broadcast_to_one_world(app: App, client_session: aiohttp.ClientSession) -> None:
    here = await players(app, 3, world=1)
    there = await players(app, 3, world=7)
    store: MailStore = app.resources.extra["mail"]
    status, _ = await broadcast(client_session, app, {"world": 7, "subject": "Event", "body": "World 7 only"})
    assert status == 202
    async with asyncio.timeout(10):
        while not all([len(await mails_of(store, 7, uid)) == 1 for uid in there]):
            await asyncio.sleep(0.01)
    await settled(app.resources.extra["jobs"])
    assert all([await mails_of(store, 1, uid) == [] for uid in here])


async def test_an_idempotency_key_sends_a_broadcast_once(app: App, client_session: aiohttp.ClientSession) -> None:
    uids = await players(app, 3)
    body = {"subject": "Maintenance", "body": "Tonight", "key": "maintenance-2026-11-22"}
    status, first = await broadcast(client_session, app, body)
    assert status == 202 and first["queued"] is True
    status, second = await broadcast(client_session, app, body)  # the operator's retry
    assert status == 200 and second == {"broadcast_id": first["broadcast_id"], "queued": False}
    await settled(app.resources.extra["jobs"])
    store: MailStore = app.resources.extra["mail"]
    assert all([len(await mails_of(store, 1, uid)) == 1 for uid in uids])


@pytest.mark.parametrize(
    ("body", "key", "status", "code"),
    [
        ({"subject": "s", "body": "b"}, "wrong-key", 401, "unauthorized"),
        ({"subject": "s", "body": "b"}, None, 401, "unauthorized"),
        ({"to": 1, "subject": "s", "body": "b"}, ADMIN_KEY, 400, "bad_request"),
        ({"subject": "", "body": "b"}, ADMIN_KEY, 400, "bad_request"),
        ({"subject": "s", "body": "b", "world": -1}, ADMIN_KEY, 400, "bad_request"),
        ({"subject": "s", "body": "b", "key": ""}, ADMIN_KEY, 400, "bad_request"),
        ({"subject": "s", "body": "b", "items": [{"item": 999999, "count": 1}]}, ADMIN_KEY, 400, "bad_request"),
    ],
)
async def test_refused_broadcasts(
    app: App, client_session: aiohttp.ClientSession, body: dict[str, Any], key: str | None, status: int, code: str
) -> None:
    got, answer = await broadcast(client_session, app, body, key=key)
    assert (got, answer["error"]["code"]) == (status, code)
    assert await app.resources.extra["jobs"].counts() == {"ready": 0, "delayed": 0, "dead": 0}


async def test_without_an_admin_key_the_route_is_off(
    app_factory: Callable[..., Any], client_session: aiohttp.ClientSession
) -> None:
    app: App = await app_factory()
    got, answer = await broadcast(client_session, app, {"subject": "s", "body": "b"})
    assert (got, answer["error"]["code"]) == (403, "forbidden")


def test_a_delivery_done_again_leaves_one_mail(tmp_path: Path) -> None:
    box = Maildir(tmp_path / "1" / "7")
    assert box.deliver_once(b"first", "1700000000000000000.Babc") is True
    assert box.deliver_once(b"second", "1700000000000000000.Babc") is False
    [entry] = box.listing()
    box.mark_seen(entry)  # read: moved to cur/ with the seen flag
    assert box.deliver_once(b"third", "1700000000000000000.Babc") is False
    assert [box.read(e) for e in box.listing()] == [b"first"] and box.count() == 1
    assert list((box.path / "tmp").iterdir()) == []  # nothing left behind
