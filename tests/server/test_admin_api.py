"""The operations console's JSON API in-process (SQLite + the in-process store): logins, roles, CSRF, the audit log,
and each action through the game's own code paths."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gameserver.app import App
from gameserver.cli import main
from gameserver.features.admin.accounts import Role
from gameserver.features.jobs import Jobs
from tests.clients import WsClient
from tests.server.admin_kit import DONE, FLAKY, PASSWORD, Console, add_admin, admin_kit, register_player
from tests.server.support import wait_until

READ_ROUTES = [
    "players?q=a",
    "players/1",
    "tables",
    "tables/accounts",
    "leaderboards",
    "jobs",
    "nodes",
    "metrics",
    "logs",
    "audit",
]
WRITE_ROUTES = [
    ("players/{uid}/inventory", {"item": 1, "delta": 5}),
    ("players/{uid}/mail", {"subject": "hi", "body": "from the ops team"}),
    ("players/{uid}/gift", {"subject": "gift", "items": [{"item": 1, "count": 2}]}),
    ("players/{uid}/kick", {}),
    ("players/{uid}/revoke", {}),
    ("players/{uid}/mute", {"seconds": 60, "reason": "spam"}),
    ("players/{uid}/unmute", {}),
    ("players/{uid}/ban", {"reason": "cheating"}),
    ("players/{uid}/unban", {}),
    ("jobs/dead/{job}/retry", {}),
    ("jobs/dead/{job}/drop", {}),
]


@pytest.fixture
async def app(app_factory: Callable[..., Any], tmp_path: Path) -> App:
    FLAKY["fail"] = True
    result: App = await app_factory(
        modules={"paths": [admin_kit(tmp_path / "mods")]},
        jobs={"poll": 0.02, "concurrency": 2},
        admin={"metrics_interval": 0.05, "max_failures_name": 3},
    )
    for name, role in (("root", Role.ADMIN), ("mod", Role.MODERATOR), ("watcher", Role.VIEWER)):
        await add_admin(result, name, role)
    return result


@pytest.fixture
async def consoles(app: App) -> AsyncIterator[Callable[[], Console]]:
    opened: list[Console] = []

    def new() -> Console:
        opened.append(Console(app))
        return opened[-1]

    yield new
    for console in opened:
        await console.close()


async def logged_in(consoles: Callable[[], Console], name: str) -> Console:
    console = consoles()
    status, body = await console.login(name)
    assert status == 200, body
    return console


async def dead_job(app: App) -> str:
    jobs: Jobs = app.resources.extra["jobs"]
    job_id = await jobs.enqueue("admkit.flaky", "first")
    assert job_id is not None
    async with asyncio.timeout(5):
        while not await jobs.dead():
            await asyncio.sleep(0.005)
    return job_id


async def audit_actions(console: Console) -> list[tuple[str, str, str]]:
    status, body = await console.get("audit")
    assert status == 200
    return [(entry["admin"], entry["action"], entry["outcome"]) for entry in body["entries"]]


# -- accounts, logins, sessions


async def test_the_cli_creates_an_account_that_logs_in(
    app_factory: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "cli-var"
    settings = ["--set", f"server.data_dir={data}", "--set", "auth.hash_memory_kib=8", "--set", "auth.hash_time_cost=1"]
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert await asyncio.to_thread(main, ["admin", "create", "Ops", "--role", "moderator", *settings]) == 0
    assert "admin account ops (moderator) created" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert await asyncio.to_thread(main, ["admin", "create", "ops", "--role", "admin", *settings]) == 1
    assert "an admin account with that name exists" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert await asyncio.to_thread(main, ["admin", "create", "other", "--role", "admin", *settings]) == 2

    app = await app_factory(server={"data_dir": str(data)})
    console = Console(app)
    try:
        status, body = await console.login("ops")
        assert status == 200 and body["name"] == "ops" and body["role"] == "moderator" and len(body["csrf"]) >= 32
        assert (await console.get("me"))[1]["role"] == "moderator"
    finally:
        await console.close()


async def test_login_sets_a_strict_http_only_cookie_and_logout_ends_it(
    app: App, consoles: Callable[[], Console]
) -> None:
    console = consoles()
    assert (await console.get("me"))[0] == 401
    status, body = await console.login("root")
    assert status == 200
    [cookie] = console.session.cookie_jar
    assert cookie.key == "gs_admin" and cookie["httponly"] and cookie["samesite"] == "Strict"
    assert cookie["path"] == "/admin"
    assert (await console.get("me"))[1] == {**body, "node": "test", "items": (await console.get("me"))[1]["items"]}
    assert (await console.post("logout"))[0] == 200
    assert (await console.get("me"))[0] == 401
    assert (await console.post("logout"))[0] == 401  # the cookie's login is gone from the store


async def test_wrong_passwords_are_refused_then_throttled_and_audited(
    app: App, consoles: Callable[[], Console]
) -> None:
    console = consoles()
    for _ in range(3):
        status, body = await console.login("root", "not the password")
        assert (status, body["error"]["code"]) == (401, "wrong_credentials")
    assert (await console.login("nobody", "not the password"))[0] == 401  # an unknown name answers the same
    status, body = await console.login("root")  # the right password, too late: the name is throttled
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    other = await logged_in(consoles, "watcher")
    actions = await audit_actions(other)
    assert actions[:6] == [
        ("watcher", "login", "ok"),
        ("root", "login", "rate_limited"),
        ("nobody", "login", "wrong_credentials"),
        ("root", "login", "wrong_credentials"),
        ("root", "login", "wrong_credentials"),
        ("root", "login", "wrong_credentials"),
    ]


async def test_every_route_needs_a_login(app: App, consoles: Callable[[], Console]) -> None:
    console = consoles()
    for path in READ_ROUTES:
        assert (await console.get(path))[0] == 401, path
    for path, body in WRITE_ROUTES:
        status, answer = await console.post(path.format(uid=1, job="x"), body, csrf="anything")
        assert (status, answer["error"]["code"]) == (401, "unauthorized"), path


# -- CSRF and roles


async def test_a_change_without_the_csrf_token_is_refused_and_audited(
    app: App, consoles: Callable[[], Console]
) -> None:
    uid, _ = await register_player(app, "csrf_target")
    console = await logged_in(consoles, "root")
    for csrf in (False, "a-guess"):
        status, body = await console.post(f"players/{uid}/inventory", {"item": 1, "delta": 5}, csrf=csrf)
        assert (status, body["error"]["code"]) == (403, "forbidden")
        assert "X-CSRF-Token" in body["error"]["message"]
    status, player = await console.get(f"players/{uid}")
    assert player["inventory"] == []
    assert (await audit_actions(console))[:2] == [("root", "inventory.edit", "forbidden")] * 2


async def test_a_viewer_reads_everything_and_changes_nothing(app: App, consoles: Callable[[], Console]) -> None:
    uid, _ = await register_player(app, "viewed")
    job = await dead_job(app)
    viewer = await logged_in(consoles, "watcher")
    for path in READ_ROUTES:
        assert (await viewer.get(path))[0] == 200, path
    for path, body in WRITE_ROUTES:
        status, answer = await viewer.post(path.format(uid=uid, job=job), body)
        assert (status, answer["error"]["code"]) == (403, "forbidden"), path
    status, player = await viewer.get(f"players/{uid}")
    assert player["inventory"] == [] and player["mailbox"]["total"] == 0 and player["tokens_valid_after"] is None
    assert (player["mute"], player["ban"]) == (None, None)
    assert len((await viewer.get("jobs"))[1]["dead"]) == 1
    assert [a for a in await audit_actions(viewer) if a[2] == "forbidden"] == [
        ("watcher", action, "forbidden")
        for action in reversed(
            [
                "inventory.edit",
                "mail.send",
                "gift.send",
                "player.kick",
                "player.revoke",
                "player.mute",
                "player.unmute",
                "player.ban",
                "player.unban",
                "jobs.retry",
                "jobs.drop",
            ]
        )
    ]


async def test_a_moderator_mails_and_kicks_but_edits_no_inventory(app: App, consoles: Callable[[], Console]) -> None:
    uid, _ = await register_player(app, "moderated")
    moderator = await logged_in(consoles, "mod")
    assert (await moderator.post(f"players/{uid}/mail", {"subject": "hello", "body": "a note"}))[0] == 200
    assert (await moderator.post(f"players/{uid}/kick"))[0] == 200
    assert (await moderator.post(f"players/{uid}/inventory", {"item": 1, "delta": 1}))[0] == 403
    assert (await moderator.post(f"players/{uid}/gift", {"subject": "g", "items": [{"item": 1, "count": 1}]}))[0] == 403


# -- players


async def test_search_and_profile(app: App, consoles: Callable[[], Console]) -> None:
    uid, _ = await register_player(app, "searchable_sam")
    await register_player(app, "other_player")
    console = await logged_in(consoles, "watcher")
    found = (await console.get("players?q=SAM"))[1]["players"]
    assert [(p["uid"], p["username"]) for p in found] == [(uid, "searchable_sam")]
    assert [p["uid"] for p in (await console.get(f"players?q={uid}"))[1]["players"]] == [uid]
    assert (await console.get("players?q=100%25"))[1]["players"] == []  # % is a character, not a wildcard
    status, body = await console.get("players?q=")
    assert (status, body["error"]["code"]) == (400, "bad_request")
    status, player = await console.get(f"players/{uid}")
    assert status == 200
    assert {k: player[k] for k in ("uid", "username", "name", "inventory", "family", "friends")} == {
        "uid": uid,
        "username": "searchable_sam",
        "name": "searchable_sam",
        "inventory": [],
        "family": {},
        "friends": [],
    }
    assert (await console.get("players/999999"))[0] == 404


async def test_inventory_edits_go_through_the_inventory_module(app: App, consoles: Callable[[], Console]) -> None:
    uid, token = await register_player(app, "holder")
    console = await logged_in(consoles, "root")
    status, body = await console.post(f"players/{uid}/inventory", {"item": 1, "delta": 5})
    assert (status, body) == (200, {"uid": uid, "item": 1, "count": 5})
    status, body = await console.post(f"players/{uid}/inventory", {"item": 1, "delta": -6})
    assert (status, body["error"]["code"]) == (400, "not_enough_items")  # the module's rule holds
    assert (await console.post(f"players/{uid}/inventory", {"item": 1, "delta": -2}))[1]["count"] == 3
    assert (await console.post(f"players/{uid}/inventory", {"item": 999, "delta": 1}))[0] == 400
    client = await WsClient.open(app.ports["ws"])
    reply = await client.call("inventory.get", token=token)
    await client.close()
    assert [(i["item"], i["count"]) for i in reply["data"]["items"]] == [(1, 3)]
    assert (await audit_actions(console))[:4] == [
        ("root", "inventory.edit", "bad_request"),
        ("root", "inventory.edit", "ok"),
        ("root", "inventory.edit", "not_enough_items"),
        ("root", "inventory.edit", "ok"),
    ]


async def test_a_gift_arrives_in_the_mailbox_and_the_player_claims_it(
    app: App, consoles: Callable[[], Console]
) -> None:
    uid, token = await register_player(app, "giftee")
    console = await logged_in(consoles, "root")
    status, sent = await console.post(
        f"players/{uid}/gift", {"subject": "sorry for the outage", "items": [{"item": 1, "count": 7}]}
    )
    assert status == 200
    status, player = await console.get(f"players/{uid}")
    [mail] = player["mailbox"]["mails"]
    assert (mail["mail_id"], mail["subject"], mail["items"]) == (
        sent["mail_id"],
        "sorry for the outage",
        [{"item": 1, "count": 7}],
    )
    client = await WsClient.open(app.ports["ws"])
    claimed = await client.call("mail.claim", {"mail_id": sent["mail_id"]}, token=token)
    await client.close()
    assert claimed["ok"], claimed
    assert (await console.get(f"players/{uid}"))[1]["inventory"][0]["count"] == 7
    assert (await console.post(f"players/{uid}/gift", {"subject": "empty"}))[0] == 400
    assert (await console.post(f"players/{uid}/mail", {"subject": "x", "items": [{"item": 1, "count": 1}]}))[0] == 400


async def test_kick_closes_the_players_connections_and_revoke_their_tokens(
    app: App, consoles: Callable[[], Console]
) -> None:
    uid, token = await register_player(app, "kicked")
    console = await logged_in(consoles, "mod")
    client = await WsClient.open(app.ports["ws"])
    assert (await client.call("session.bind", {"token": token}))["ok"]
    assert (await console.get(f"players/{uid}"))[1]["connections_here"] == 1
    assert (await console.post(f"players/{uid}/kick"))[1] == {"uid": uid, "kicked": True}
    assert await client.close_code() == 1000
    again = await WsClient.open(app.ports["ws"])  # a kick is not a ban: the token still binds
    assert (await again.call("session.bind", {"token": token}))["ok"]
    status, body = await console.post(f"players/{uid}/revoke")
    assert status == 200 and body["tokens_valid_after"] > 0
    assert await again.close_code() == 1000
    third = await WsClient.open(app.ports["ws"])
    assert (await third.call("session.bind", {"token": token}))["error"]["code"] == "unauthorized"
    await third.close()
    assert (await console.post("players/999999/kick"))[0] == 404


async def test_a_moderator_mutes_and_bans_through_the_moderation_store(
    app: App, consoles: Callable[[], Console]
) -> None:
    uid, token = await register_player(app, "rowdy")
    moderator = await logged_in(consoles, "mod")
    status, body = await moderator.post(f"players/{uid}/mute", {"seconds": 600, "reason": "flooding"})
    assert status == 200 and (body["mute"]["by"], body["mute"]["reason"]) == ("mod", "flooding")
    assert (await moderator.post(f"players/{uid}/mute", {"seconds": -1}))[0] == 400
    client = await WsClient.open(app.ports["ws"])
    assert (await client.call("session.bind", {"token": token}))["ok"]
    status, body = await moderator.post(f"players/{uid}/ban", {"reason": "cheating"})
    assert status == 200 and body["ban"]["until"] is None  # no seconds: permanent
    assert await client.close_code() == 1000  # the ban revoked the player's sessions
    player = (await moderator.get(f"players/{uid}"))[1]
    assert (player["mute"]["reason"], player["ban"]["reason"]) == ("flooding", "cheating")
    login = {"username": "rowdy", "password": PASSWORD}
    async with moderator.session.post(f"http://127.0.0.1:{app.ports['http']}/auth/login", json=login) as response:
        assert (await response.json())["error"]["code"] == "banned"
    assert (await moderator.post(f"players/{uid}/unban"))[1] == {"uid": uid, "lifted": True}
    assert (await moderator.post(f"players/{uid}/unmute"))[1] == {"uid": uid, "lifted": True}
    async with moderator.session.post(f"http://127.0.0.1:{app.ports['http']}/auth/login", json=login) as response:
        assert response.status == 200
    assert (await moderator.post("players/999999/ban", {}))[0] == 404
    actions = [a for a in await audit_actions(moderator) if a[1].startswith("player.")]
    assert actions[:4] == [
        ("mod", "player.ban", "account_not_found"),
        ("mod", "player.unmute", "ok"),
        ("mod", "player.unban", "ok"),
        ("mod", "player.ban", "ok"),
    ]


# -- jobs, tables, leaderboards, nodes, metrics, logs


async def test_dead_letters_are_retried_and_dropped(app: App, consoles: Callable[[], Console]) -> None:
    job = await dead_job(app)
    console = await logged_in(consoles, "root")
    status, body = await console.get("jobs")
    assert body["counts"]["dead"] == 1
    [letter] = body["dead"]
    assert (letter["job_id"], letter["name"]) == (job, "admkit.flaky")
    assert "flaky job first failed as asked" in letter["error"]
    FLAKY["fail"] = False
    assert (await console.post(f"jobs/dead/{job}/retry"))[1] == {"done": [job]}
    await wait_until(lambda: "first" in DONE)
    assert (await console.post(f"jobs/dead/{job}/retry"))[0] == 404  # gone from the dead letters
    FLAKY["fail"] = True
    second = await dead_job(app)
    assert (await console.post(f"jobs/dead/{second}/drop"))[1] == {"done": [second]}
    assert (await console.get("jobs"))[1]["counts"]["dead"] == 0


async def test_the_table_browser_pages_and_masks_secrets(app: App, consoles: Callable[[], Console]) -> None:
    for n in range(3):
        await register_player(app, f"row_{n}")
    console = await logged_in(consoles, "watcher")
    tables = {t["name"]: t["columns"] for t in (await console.get("tables"))[1]["tables"]}
    assert "password_hash" in tables["accounts"] and "admin_audit" in tables
    status, page = await console.get("tables/accounts?page=1&size=2")
    assert (page["total"], page["page"], len(page["rows"])) == (3, 1, 1)
    row = dict(zip(page["columns"], page["rows"][0], strict=True))
    assert row["username"] == "row_2" and row["password_hash"] == "***"
    admins = (await console.get("tables/admin_accounts"))[1]
    assert {r[admins["columns"].index("password_hash")] for r in admins["rows"]} == {"***"}
    assert (await console.get("tables/nope"))[0] == 404
    assert (await console.get("tables/accounts?size=100000"))[0] == 400


async def test_leaderboards_nodes_and_metrics(app: App, consoles: Callable[[], Console]) -> None:
    uid, token = await register_player(app, "scorer")
    client = await WsClient.open(app.ports["ws"])
    assert (await client.call("leaderboard.submit", {"board": "global", "score": 42}, token=token))["ok"]
    await client.close()
    console = await logged_in(consoles, "watcher")
    boards = (await console.get("leaderboards"))[1]["boards"]
    assert boards == {"global": [{"uid": uid, "score": 42, "name": "scorer"}]}
    nodes = (await console.get("nodes"))[1]["nodes"]
    assert [n["node"] for n in nodes] == ["test"]

    async def samples() -> list[dict[str, Any]]:
        return list((await console.get("metrics"))[1]["nodes"].get("test", []))

    async with asyncio.timeout(5):
        while len(await samples()) < 2:
            await asyncio.sleep(0.01)
    last = (await samples())[-1]
    assert {"t", "requests", "errors", "inflight", "connections", "players"} <= set(last)
    assert last["requests"] >= 1


async def test_the_log_page_filters_and_follows(
    app: App, consoles: Callable[[], Console], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    console = await logged_in(consoles, "watcher")
    logging.getLogger("modules.demo").warning("uid=17 lost a sword")
    logging.getLogger("gameserver.other").info("unrelated line")

    async def lines(query: str) -> tuple[list[dict[str, Any]], str]:
        status, body = await console.get("logs?" + query)
        assert status == 200, body
        return body["lines"], body["last"]

    async with asyncio.timeout(5):
        while not [x for x in (await lines("module=modules.demo"))[0]]:
            await asyncio.sleep(0.01)
    [line], last = await lines("module=modules&level=warning&uid=17&node=test")
    assert (line["msg"], line["level"], line["logger"], line["node"]) == (
        "uid=17 lost a sword",
        "warning",
        "modules.demo",
        "test",
    )
    assert (await lines("module=modules&node=elsewhere"))[0] == []
    assert (await lines("uid=18&module=modules"))[0] == []
    assert (await console.get("logs?level=loud"))[0] == 400

    logging.getLogger("modules.demo").error("second line", extra={"cid": "test-9-1"})
    async with asyncio.timeout(5):
        while not (await lines(f"after={last}&module=modules.demo"))[0]:
            await asyncio.sleep(0.01)
    [followed], _ = await lines(f"after={last}&module=modules.demo")
    assert (followed["msg"], followed["cid"]) == ("second line", "test-9-1")
    assert [x["msg"] for x in (await lines("cid=test-9"))[0]] == ["second line"]


async def test_the_page_is_served_with_a_strict_content_security_policy(
    app: App, consoles: Callable[[], Console]
) -> None:
    console = consoles()
    for path in ("/admin/", "/admin/static/admin.js", "/admin/static/admin.css"):
        async with console.session.get(f"http://127.0.0.1:{app.ports['http']}{path}") as response:
            assert response.status == 200
            assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    async with console.session.get(f"http://127.0.0.1:{app.ports['http']}/admin/static/api.py") as response:
        assert response.status == 404


async def test_accounts_audit_search_and_paging_on_each_sql_backend(
    app_factory: Callable[..., Any], db_url: str
) -> None:
    app: App = await app_factory(db={"url": db_url})
    await add_admin(app, "root", Role.ADMIN)
    for name in ("under_score", "underXscore", "percent"):
        await register_player(app, name)
    console = Console(app)
    try:
        assert (await console.login("ROOT", "wrong password"))[0] == 401
        assert (await console.login("Root"))[0] == 200  # names are case-insensitive
        found = (await console.get("players?q=r_s"))[1]["players"]
        assert [p["username"] for p in found] == ["under_score"]  # _ is a character, not a wildcard
        uid = found[0]["uid"]
        assert (await console.post(f"players/{uid}/inventory", {"item": 1, "delta": 2}))[1]["count"] == 2
        assert await audit_actions(console) == [
            ("root", "inventory.edit", "ok"),
            ("root", "login", "ok"),
            ("root", "login", "wrong_credentials"),
        ]
        page = (await console.get("tables/admin_audit?page=1&size=2"))[1]
        assert (page["total"], len(page["rows"])) == (3, 1)
        assert page["rows"][0][page["columns"].index("action")] == "inventory.edit"
    finally:
        await console.close()
