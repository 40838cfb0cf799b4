"""``gameserver admin create NAME --role viewer|moderator|admin``: make an operations-console account.

The password is asked twice on a terminal, or read as the first line of standard input otherwise (a script:
``printf '%s\\n' "$PASSWORD" | gameserver admin create ops --role admin``). It is checked as a player's is
(``auth.password_min``..``auth.password_max``) and hashed with the configured argon2id cost.
"""

from __future__ import annotations

import asyncio
import getpass
import sys

import sqlalchemy as sa

from gameserver.config import Config
from gameserver.errors import GameError
from gameserver.features.admin.accounts import check_name, check_role, create_admin
from gameserver.features.admin.tables import admin_accounts, admin_audit
from gameserver.features.identity.passwords import Passwords
from gameserver.features.identity.validation import check_password
from gameserver.storage.errors import is_unavailable
from gameserver.storage.sql import Sql


def read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the passwords differ")
    return first


def create(config: Config, name: str, role: str) -> int:
    try:
        name = check_name(name)
        chosen = check_role(role)
        password = check_password(read_password(), min_len=config.auth.password_min, max_len=config.auth.password_max)
    except (GameError, ValueError) as exc:
        print(f"gameserver admin create: {exc}", file=sys.stderr)
        return 2
    try:
        admin_id = asyncio.run(_create(config, name, chosen, password))
    except GameError as exc:
        print(f"gameserver admin create: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        print(f"gameserver admin create: the database is unreachable: {exc}", file=sys.stderr)
        return 1
    print(f"admin account {name} ({chosen}) created, id {admin_id}")
    return 0


async def _create(config: Config, name: str, role: str, password: str) -> int:
    config.data_path.mkdir(parents=True, exist_ok=True)
    db = Sql.open(config.db, config.data_path)
    try:
        mine = sa.MetaData()
        for table in (admin_accounts, admin_audit):  # only these: the game's tables are the server's to create
            table.to_metadata(mine)
        await db.create_tables(mine)
        hashed = await Passwords.from_config(config.auth).hash(password)
        async with db.transaction() as tx:
            return await create_admin(tx, name, check_role(role), hashed)
    finally:
        await db.close()
