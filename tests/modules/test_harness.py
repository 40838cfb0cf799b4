"""gameserver.testing: a module written against the harness is tested without starting a server (issue 11)."""

from __future__ import annotations

from pathlib import Path

from gameserver.testing import harness
from tests.fixtures import migrating

FIXTURE = str(Path(migrating.__file__).parent)
RESOURCES = {"db", "redis", "config", "push", "session", "chat", "jobs", "mail", "game", "nodes", "http", "keys"}


async def test_a_new_module_is_tested_without_a_server(tmp_path: Path) -> None:
    """tests/fixtures/migrating/gems: its table from its own migrations, called directly and through the
    dispatcher, on no port at all."""
    async with harness(tmp_path, modules={"paths": [FIXTURE]}) as game:
        assert game.app.ports == {}  # no listener
        assert RESOURCES <= set(game.ctx(1))
        uid = await game.player("ann")
        from gameserver_modules.gems.handlers import grant  # type: ignore[import-not-found]

        assert await grant(5, **game.ctx(uid)) == {"gems": 5, "bonus": 1}
        reply = await game.request("gems.grant", {"gems": 2}, uid=uid, idem="a")
        assert reply == {"id": 1, "ok": True, "data": {"gems": 7, "bonus": 2}}
        assert (await game.request("gems.grant", {"gems": "x"}, uid=uid))["error"]["code"] == "bad_request"
        assert (await game.request("gems.balance"))["error"]["code"] == "unauthorized"


async def test_settings_sessions_and_logins(tmp_path: Path) -> None:
    async with harness(tmp_path, modules={"leaderboard": {"boards": ["s1"]}}) as game:
        ann = await game.player("ann")
        top = await game.request("leaderboard.top", {"board": "global"})
        assert top["error"]["code"] == "leaderboard_unknown_board"  # the section given to the harness
        assert (await game.request("leaderboard.submit", {"board": "s1", "score": 3}, uid=ann))["ok"]
        registered = await game.request("auth.register", {"username": "bea", "password": "correct horse"})
        token = registered["data"]["token"]
        anonymous = game.session()
        assert (await game.request("account.profile", token=token, session=anonymous))["data"]["name"] == "bea"
        bea = registered["data"]["uid"]
        await game.request("mail.send", {"to": ann, "subject": "hi", "body": ""}, uid=bea)
        assert [event for event, _ in game.session(ann).pushes] == ["mail.new"]
