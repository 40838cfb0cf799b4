"""Moderation in one process (docs/PROTOCOL.md, "Moderation"): mutes and the word filter on the chat edge, bans at
login and bind, reports of chat lines, the admin routes and their log of who did what."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from gameserver.app import App
from tests.server.social import ADMIN_KEY, Admin, chat_login, connect, login, register

AppFactory = Callable[..., Awaitable[App]]


@pytest.fixture
async def app(app_factory: AppFactory) -> App:
    return await app_factory(moderation={"admin_key": ADMIN_KEY, "words": ["darn", "heck no"], "filter": "mask"})


@pytest.fixture
def admin(app: App, client_session: aiohttp.ClientSession) -> Admin:
    return Admin(client_session, app)


async def test_routes_need_the_admin_key(app: App, client_session: aiohttp.ClientSession) -> None:
    for key, status in (("wrong", 401), ("", 401)):
        assert (await Admin(client_session, app, key=key).post("/moderation/mute", {"uid": 1}))[0] == status


async def test_routes_are_off_without_a_key(app_factory: AppFactory, client_session: aiohttp.ClientSession) -> None:
    app = await app_factory()
    status, body = await Admin(client_session, app).get("/moderation/reports")
    assert status == 403 and "moderation.admin_key" in body["error"]["message"]


async def test_a_muted_players_lines_are_refused_while_others_chat(app: App, admin: Admin) -> None:
    gate_a, uid_a, _ = await register(app)
    gate_b, _, _ = await register(app)
    chat_a, chat_b = await chat_login(app, gate_a), await chat_login(app, gate_b)
    status, mute = await admin.post("/moderation/mute", {"uid": uid_a, "seconds": 600, "reason": "spam"})
    assert status == 200
    assert (mute["uid"], mute["reason"], mute["by"]) == (uid_a, "spam", "alice-mod")
    assert mute["until"] - mute["at"] == 600_000
    await chat_a.send("PUBLIC", "hello?")
    assert await chat_a.recv() == ("ERROR", "muted")
    await chat_b.send("PUBLIC", "hi all")
    for client in (chat_a, chat_b):
        command, line = await client.recv_message()
        assert (command, line["text"]) == ("PUBLIC", "hi all")
    assert (await admin.post("/moderation/unmute", {"uid": uid_a}))[1] == {"uid": uid_a, "lifted": True}
    await chat_a.send("PUBLIC", "back")
    for client in (chat_a, chat_b):
        assert (await client.recv_message())[1]["text"] == "back"


async def test_a_mute_reaches_a_player_who_logs_in_later(app: App, admin: Admin) -> None:
    gate, uid, _ = await register(app)
    await admin.post("/moderation/mute", {"uid": uid, "reason": "permanent"})
    chat = await chat_login(app, gate)
    await chat.send("FAMILY", "x")  # not in a family: the family check comes first
    assert (await chat.recv())[0] == "ERROR"
    await chat.send("PUBLIC", "x")
    assert await chat.recv() == ("ERROR", "muted")
    status, state = await admin.get(f"/moderation/players/{uid}")
    assert status == 200 and state["mute"]["until"] is None and state["ban"] is None


async def test_the_word_filter_masks_variants(app: App) -> None:
    gate, _, _ = await register(app)
    chat = await chat_login(app, gate)
    await chat.send("PUBLIC", "oh DARN it, h3ck   n0 and darning")
    assert (await chat.recv_message())[1]["text"] == "oh **** it, ****   ** and darning"


async def test_the_word_filter_can_reject(app_factory: AppFactory) -> None:
    app = await app_factory(moderation={"words": ["darn"], "filter": "reject"})
    gate, _, _ = await register(app)
    chat = await chat_login(app, gate)
    await chat.send("PUBLIC", "ｄａｒｎ")
    assert await chat.recv() == ("ERROR", "filtered")
    await chat.send("PUBLIC", "fine")
    assert (await chat.recv_message())[1]["text"] == "fine"


async def test_a_banned_player_is_closed_and_cannot_log_in_or_bind(app: App, admin: Admin) -> None:
    gate, uid, name = await register(app)
    token = (await gate.call("auth.refresh"))["data"]["token"]
    chat = await chat_login(app, gate)
    status, ban = await admin.post("/moderation/ban", {"uid": uid, "seconds": 3600, "reason": "cheating"})
    assert status == 200 and ban["reason"] == "cheating"
    assert await gate.closed() and await chat.closed()  # its tokens were revoked
    _, reply = await login(app, name)
    assert reply["error"]["code"] == "banned" and "cheating" in reply["error"]["message"]
    fresh = await connect(app)
    assert (await fresh.call("session.bind", {"token": token}))["error"]["code"] == "unauthorized"  # revoked
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{app.ports['http']}/auth/login"
        async with session.post(url, json={"username": name, "password": "correct horse battery"}) as response:
            assert response.status == 403 and (await response.json())["error"]["code"] == "banned"
    assert (await admin.post("/moderation/unban", {"uid": uid}))[1] == {"uid": uid, "lifted": True}
    assert (await login(app, name))[1]["ok"]


async def test_ban_of_an_unknown_player_is_404_and_not_recorded(app: App, admin: Admin) -> None:
    assert (await admin.post("/moderation/ban", {"uid": 999_999}))[0] == 404
    assert (await admin.get("/moderation/players/999999"))[1]["ban"] is None


async def test_kick_closes_the_connections_but_allows_a_new_login(app: App, admin: Admin) -> None:
    gate, uid, name = await register(app)
    status, body = await admin.post("/moderation/kick", {"uid": uid, "reason": "afk"})
    assert status == 200 and body["uid"] == uid
    assert await gate.closed()
    assert (await login(app, name))[1]["ok"]


async def test_a_report_names_the_line_and_admins_resolve_it(app: App, admin: Admin) -> None:
    gate_a, uid_a, _ = await register(app)
    gate_b, uid_b, _ = await register(app)
    chat_a = await chat_login(app, gate_a)
    await chat_a.send("PUBLIC", "you are all bots")
    line = (await chat_a.recv_message())[1]
    await app.resources.extra["chat"].history.flush()
    reply = await gate_b.call("chat.report", {"line": line["id"], "reason": "rude"})
    assert reply["ok"], reply
    report_id = reply["data"]["report"]
    assert (await gate_b.call("chat.report", {"line": "nope"}))["error"]["code"] == "line_not_found"
    status, body = await admin.get("/moderation/reports")
    [report] = body["reports"]
    assert (report["id"], report["reporter"], report["uid"], report["text"]) == (
        report_id,
        uid_b,
        uid_a,
        "you are all bots",
    )
    assert (report["line"], report["status"], report["reason"]) == (line["id"], "open", "rude")
    status, resolved = await admin.post(f"/moderation/reports/{report_id}/resolve", {"note": "warned"})
    assert status == 200 and (resolved["status"], resolved["resolved_by"]) == ("resolved", "alice-mod")
    assert (await admin.get("/moderation/reports"))[1]["reports"] == []
    assert len((await admin.get("/moderation/reports?status=all"))[1]["reports"]) == 1
    assert (await admin.post("/moderation/reports/12345/resolve", {}))[0] == 404


async def test_reports_are_rate_limited(app_factory: AppFactory) -> None:
    app = await app_factory(moderation={"report_rate": 2})
    gate, _, _ = await register(app)
    chat = await chat_login(app, gate)
    await chat.send("PUBLIC", "reported thrice")
    line = (await chat.recv_message())[1]
    codes = [await gate.call("chat.report", {"line": line["id"]}) for _ in range(3)]
    assert [reply.get("error", {}).get("code") for reply in codes] == [None, None, "rate_limited"]


async def test_every_action_is_logged_with_who_did_it(app: App, admin: Admin) -> None:
    _, uid, _ = await register(app)
    await admin.post("/moderation/mute", {"uid": uid, "seconds": 5})
    await admin.post("/moderation/unmute", {"uid": uid})
    await admin.post("/moderation/ban", {"uid": uid, "reason": "r"})
    status, body = await admin.get(f"/moderation/log?uid={uid}")
    assert status == 200
    assert [(e["action"], e["by"], e["uid"]) for e in body["entries"]] == [
        ("ban", "alice-mod", uid),
        ("unmute", "alice-mod", uid),
        ("mute", "alice-mod", uid),
    ]


@pytest.mark.parametrize(
    "body",
    [{}, {"uid": "1"}, {"uid": 0}, {"uid": 1, "seconds": -1}, {"uid": 1, "seconds": True}, {"uid": 1, "x": 1}],
)
async def test_bad_bodies_are_400(admin: Admin, body: dict[str, object]) -> None:
    status, answer = await admin.post("/moderation/mute", body)
    assert status == 400, answer
    assert json.dumps(answer).count("bad_request") == 1
