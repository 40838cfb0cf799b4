"""Schema migrations (gameserver/storage/migrate.py): ``gameserver migrate`` brings an empty database, and one at the
previous schema (made by a release before migrations, or a module at its previous revision), to head, on SQLite
and on the real MariaDB; the result equals the tables the code declares; start-up upgrades an embedded database
and refuses a MariaDB one that is behind."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gameserver.config import Config, DbConfig
from gameserver.dispatch.registry import discover
from gameserver.errors import ConfigError
from gameserver.storage.migrate import Schema
from gameserver.storage.sql import Sql, metadata
from tests.fixtures import migrating

FIXTURE = str(Path(migrating.__file__).parent)
REPO = Path(__file__).parents[2]
TABLES = (
    "accounts", "idempotency", "families", "family_members", "friends", "friend_requests", "inventory",
    "leaderboard_scores", "mail_claims",
)  # fmt: skip
HEADS = {"core_0004", "family_0001", "friends_0001", "inventory_0001", "leaderboard_0001", "mail_0001", "gems_0002"}


async def gameserver(cwd: Path, *args: str) -> tuple[int, str]:
    """``gameserver ARGS`` as a subprocess (what scripts/deploy runs); returns its exit code and output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMESERVER_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gameserver", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


def settings(db_url: str) -> list[str]:
    return ["--set", f"db.url={db_url}", "--set", f'modules.paths=["{FIXTURE}"]', "--data-dir", "var"]


def open_db(db_url: str, tmp_path: Path) -> Sql:
    return Sql.open(DbConfig(url=db_url, query_timeout=10.0), tmp_path)


def started_modules(app: Any) -> dict[str, Any]:
    """The module packages a worker app runs."""
    assert app.functions_table is not None
    return dict(app.functions_table.modules)


def modules() -> dict[str, Any]:
    return dict(discover([FIXTURE]))


async def differences(db: Sql) -> list[Any]:
    """What Alembic's autogenerate would still change: the migrated schema against the declared tables."""
    names = {*TABLES, "gems_wallets"}

    def include(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
        return kind != "table" or name in names

    def compare(connection: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"include_object": include, "compare_type": True, "target_metadata": metadata}
        )
        return [diff for diff in compare_metadata(context, metadata) if not _benign(diff)]

    return await db.run_schema(compare)


def _benign(diff: Any) -> bool:
    # The version table is Alembic's own.
    return isinstance(diff, tuple) and diff[0] == "remove_table" and diff[1].name == "alembic_version"


async def test_migrate_an_empty_database_to_head(db_url: str, tmp_path: Path) -> None:
    code, out = await gameserver(tmp_path, "migrate", *settings(db_url))
    assert code == 0, out
    assert "applied" in out and "gems_0002" in out
    db = open_db(db_url, tmp_path)
    try:
        status = await Schema.of(modules()).status(db)
        assert set(status.current) == HEADS and status.at_head
        assert await differences(db) == []
    finally:
        await db.close()


OLD_ACCOUNTS = sa.MetaData()
sa.Table(  # accounts as the releases before revocation created it: no tokens_valid_after
    "accounts",
    OLD_ACCOUNTS,
    sa.Column("uid", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("display_name", sa.String(64), nullable=False),
    sa.Column("world", sa.Integer, nullable=False),
    sa.Column("family", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("username", name="uq_accounts_username"),
    sa.Index("ix_accounts_family", "family"),
    sa.Index("ix_accounts_world", "world"),
)


async def test_migrate_a_database_at_the_previous_schema(db_url: str, tmp_path: Path) -> None:
    """A database made by the release before migrations (create_all at start-up, accounts without its last
    column, no alembic_version), holding players, and the gems module at its previous revision."""
    db = open_db(db_url, tmp_path)
    try:
        await db.create_tables(OLD_ACCOUNTS)
        previous = sa.MetaData()
        for name in ("families", "family_members", "friends", "friend_requests", "inventory", "mail_claims"):
            metadata.tables[name].to_metadata(previous)
        await db.create_tables(previous)
        await db.execute(
            OLD_ACCOUNTS.tables["accounts"]
            .insert()
            .values(username="old", password_hash="-", display_name="Old", world=1, created_at=datetime(2026, 1, 1))
        )
        await Schema.of(modules()).upgrade(db, "gems_0001")  # the module's previous revision, alone
        await db.execute(sa.text("INSERT INTO gems_wallets (uid, gems) VALUES (7, 70)"))
    finally:
        await db.close()

    assert (await gameserver(tmp_path, "migrate", "--check", *settings(db_url)))[0] == 1
    code, out = await gameserver(tmp_path, "migrate", *settings(db_url))
    assert code == 0, out
    db = open_db(db_url, tmp_path)
    try:
        assert set((await Schema.of(modules()).status(db)).current) == HEADS
        assert await differences(db) == []
        row = await db.fetch_one(sa.text("SELECT username, tokens_valid_after FROM accounts"))
        assert row is not None and tuple(row) == ("old", None)  # the player kept, the new column NULL
        assert tuple(await db.fetch_one(sa.text("SELECT gems, bonus FROM gems_wallets")) or ()) == (70, 0)
    finally:
        await db.close()


async def test_two_processes_migrating_at_once(db_url: str, tmp_path: Path) -> None:
    results = await asyncio.gather(*(gameserver(tmp_path, "migrate", *settings(db_url)) for _ in range(2)))
    assert [code for code, _ in results] == [0, 0], results
    assert sum("nothing to apply" in out for _, out in results) == 1


async def test_an_embedded_server_upgrades_at_start_up(app_factory: Callable[..., Any], tmp_path: Path) -> None:
    app = await app_factory(modules={"paths": [FIXTURE]}, db={"migrate": "auto"})
    status = await Schema.of(started_modules(app)).status(app.resources.db)
    assert set(status.current) == HEADS


@pytest.mark.integration
async def test_a_server_on_mariadb_refuses_a_schema_behind_its_code(
    app_factory: Callable[..., Any], config_factory: Callable[..., Config], mariadb_database: str
) -> None:
    config = config_factory(db={"url": mariadb_database, "migrate": "auto"})
    with pytest.raises(ConfigError, match="the schema lacks 9 revisions .*run `gameserver migrate`"):
        await app_factory(config)
    db = open_db(mariadb_database, Path("."))
    try:
        await Schema.of(discover()).upgrade(db)
    finally:
        await db.close()
    app = await app_factory(config)
    assert (await Schema.of(started_modules(app)).status(app.resources.db)).at_head


@pytest.mark.usefixtures("cli_env")
def test_migrate_new_writes_a_revision_on_the_modules_branch(tmp_path: Path) -> None:
    """``gameserver migrate --new MODULE``: the first revision starts the module's branch, the next continues it."""
    import shutil

    from gameserver.cli import main

    folder = tmp_path / "mods"
    shutil.copytree(FIXTURE, folder)
    args = ["migrate", "--set", f'modules.paths=["{folder}"]', "--new", "gems", "-m", "add level"]
    assert main(args) == 0
    written = [p for p in (folder / "gems" / "migrations").glob("*add_level.py")]
    assert len(written) == 1
    text = written[0].read_text()
    assert "down_revision = 'gems_0002'" in text or 'down_revision = "gems_0002"' in text
    sys.modules.pop("gameserver_modules.gems", None)
