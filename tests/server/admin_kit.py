"""What the operations-console tests share: admin accounts, a logged-in HTTP client, a player, and a job that fails
until told otherwise (for a real dead letter)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import aiohttp

from gameserver.app import App
from gameserver.features.admin.accounts import Role, create_admin
from gameserver.features.identity.passwords import Passwords
from tests.clients import http_url

PASSWORD = "correct horse battery staple"
FLAKY = {"fail": True}
"""``admkit.flaky`` raises while ``FLAKY["fail"]``: it dies (``jobs.max_tries = 1``), then succeeds when retried."""
DONE: list[str] = []


async def flaky(label: str) -> None:
    if FLAKY["fail"]:
        raise ValueError(f"flaky job {label} failed as asked")
    DONE.append(label)


def admin_kit(root: Path) -> str:
    """A module folder with ``admkit``: the job ``admkit.flaky``."""
    folder = root / "admkit"
    folder.mkdir(parents=True, exist_ok=True)
    source = f"""
        from {__name__} import flaky
        from gameserver.features.jobs import job

        HANDLERS = {{}}
        JOBS = {{"flaky": job(flaky, max_tries=1)}}
    """
    (folder / "__init__.py").write_text(textwrap.dedent(source))
    return str(root)


async def add_admin(app: App, name: str, role: Role, password: str = PASSWORD) -> None:
    hashed = await Passwords.from_config(app.config.auth).hash(password)
    async with app.resources.db.transaction() as tx:
        await create_admin(tx, name, role, hashed)


class Console:
    """An HTTP client of the console with a cookie jar of its own (one browser)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # unsafe: cookies on an IP
        self.csrf = ""

    async def close(self) -> None:
        await self.session.close()

    async def login(self, name: str, password: str = PASSWORD) -> tuple[int, dict[str, Any]]:
        status, body = await self.post("login", {"name": name, "password": password}, csrf=False)
        if status == 200:
            self.csrf = body["csrf"]
        return status, body

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(http_url(self.app, "/admin/api/" + path)) as response:
            return response.status, await response.json()

    async def post(self, path: str, body: Any = None, *, csrf: bool | str = True) -> tuple[int, Any]:
        headers = {}
        if csrf:
            headers["X-CSRF-Token"] = csrf if isinstance(csrf, str) else self.csrf
        async with self.session.post(
            http_url(self.app, "/admin/api/" + path), json={} if body is None else body, headers=headers
        ) as response:
            return response.status, await response.json()


async def register_player(app: App, name: str) -> tuple[int, str]:
    """A new player through ``POST /auth/register``: its uid and token."""
    async with aiohttp.ClientSession() as session:
        async with session.post(
            http_url(app, "/auth/register"), json={"username": name, "password": PASSWORD}
        ) as response:
            body = await response.json()
            assert response.status == 201, body
            return int(body["uid"]), str(body["token"])
