"""Schema migrations: Alembic revisions of the core and of each module, on the shared metadata.

The core's revisions (branch ``gameserver``) live in ``gameserver/storage/migrations/versions``; a module's in a
``migrations/`` folder beside its ``__init__.py``, a branch labelled with the module's name. ``gameserver
migrate`` upgrades every branch to its head; so does the start-up of an embedded (SQLite) server, while a server
on MariaDB checks that the schema is at head and refuses to start otherwise (``db.migrate``), because there
``scripts/deploy`` migrates once, before the new release takes over. See docs/storage.md, "Migrations".

The first revision of each shipped branch adopts a database made by a release before migrations (tables created
at start-up): :func:`create_table` and :func:`add_column` skip what exists.
"""

from __future__ import annotations

import logging
import os
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command, op
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from gameserver.config import MIGRATE_MODES
from gameserver.errors import ConfigError
from gameserver.storage.sql import Sql

log = logging.getLogger("gameserver.migrate")
logging.getLogger("alembic").setLevel(logging.WARNING)  # its plugin set-up lines at INFO on every start; ours say it

SCRIPTS = Path(__file__).parent / "migrations"
CORE_VERSIONS = SCRIPTS / "versions"
CORE_BRANCH = "gameserver"
MODES = MIGRATE_MODES


def locations(modules: Mapping[str, types.ModuleType] | None = None) -> list[Path]:
    """The folders of revisions: the core's, then each module's ``migrations/`` folder that exists."""
    found = [CORE_VERSIONS]
    for module in (modules or {}).values():
        folder = Path(module.__file__ or "").parent / "migrations"
        if folder.is_dir():
            found.append(folder)
    return found


def alembic_config(folders: Iterable[Path], connection: sa.Connection | None = None) -> AlembicConfig:
    """Alembic's config without an ``alembic.ini``: our script folder, these revision folders."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(SCRIPTS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(folder) for folder in folders))
    config.attributes["connection"] = connection
    return config


@dataclass(frozen=True, slots=True)
class Status:
    """Where a database stands: ``pending`` revisions this code has and it lacks; ``unknown`` ones it has and this
    code does not (a newer release migrated it: fine while its changes only add)."""

    current: tuple[str, ...]
    heads: tuple[str, ...]
    pending: tuple[str, ...]
    unknown: tuple[str, ...]

    @property
    def at_head(self) -> bool:
        return not self.pending


class Schema:
    """The migrations of the core and ``modules``, and what start-up does with them (``db.migrate``).

    Args:
        folders: the revision folders (:func:`locations`).
        mode: ``auto`` (upgrade on SQLite, check elsewhere), ``upgrade``, ``check`` or ``off``.
    """

    def __init__(self, folders: Sequence[Path], mode: str = "auto") -> None:
        if mode not in MODES:
            raise ConfigError(f"db.migrate: {mode!r} is not one of {', '.join(MODES)}")
        self.folders = list(folders)
        self.mode = mode

    @classmethod
    def of(cls, modules: Mapping[str, types.ModuleType], mode: str = "auto") -> Schema:
        return cls(locations(modules), mode)

    async def prepare(self, db: Sql) -> None:
        """Start-up: upgrade or check as ``mode`` says.

        Raises:
            ConfigError: ``check`` found revisions to apply (run ``gameserver migrate``).
            sqlalchemy.exc.DBAPIError: the database refused or is unreachable.
        """
        mode = self.mode
        if mode == "auto":
            mode = "upgrade" if db.dialect == "sqlite" else "check"
        if mode == "upgrade":
            await self.upgrade(db)
        elif mode == "check":
            status = await self.status(db)
            if not status.at_head:
                raise ConfigError(
                    f"db.url: the schema lacks {len(status.pending)} revisions ({', '.join(status.pending)}): "
                    "run `gameserver migrate` (scripts/deploy does, before the switch), or set db.migrate = "
                    '"upgrade" to migrate at start-up'
                )
            if status.unknown:
                log.warning("the schema has revisions this release does not know: %s", ", ".join(status.unknown))

    async def upgrade(self, db: Sql, target: str = "heads") -> list[str]:
        """Apply the pending revisions, under a lock that other processes migrating the same database wait for;
        returns those applied, oldest first."""

        def run(connection: sa.Connection) -> list[str]:
            before = _status(connection, self.folders)
            command.upgrade(alembic_config(self.folders, connection), target)
            after = _status(connection, self.folders)
            return [rev for rev in before.pending if rev not in after.pending]

        applied = await db.run_schema(run)
        if applied:
            log.info("schema upgraded: %s", ", ".join(applied))
        return applied

    async def status(self, db: Sql) -> Status:
        return await db.run_schema(lambda connection: _status(connection, self.folders))


def _status(connection: sa.Connection, folders: Sequence[Path]) -> Status:
    script = ScriptDirectory.from_config(alembic_config(folders))
    current = set(MigrationContext.configure(connection).get_current_heads())
    known = {rev.revision for rev in script.walk_revisions()}
    unknown = current - known
    applied: set[str] = set()
    for rev in current & known:
        applied.update(r.revision for r in script.iterate_revisions(rev, "base"))
    ordered = [rev.revision for rev in reversed(list(script.walk_revisions()))]  # oldest first
    return Status(
        current=tuple(sorted(current)),
        heads=tuple(sorted(script.get_heads())),
        pending=tuple(rev for rev in ordered if rev not in applied),
        unknown=tuple(sorted(unknown)),
    )


def new_revision(module: str, folder: Path, message: str, *, db_folders: Sequence[Path]) -> Any:
    """Write an empty revision for ``module`` (its first one starts the branch) into ``folder``."""
    config = alembic_config(db_folders)
    script = ScriptDirectory.from_config(config)
    try:
        script.revision_map.get_revision(f"{module}@head")
        first = False
    except Exception:
        first = True
    folder.mkdir(exist_ok=True)
    (folder / "__init__.py").touch()
    return command.revision(
        config,
        message,
        head="base" if first else f"{module}@head",
        branch_label=module if first else None,
        version_path=str(folder),
    )


# Helpers for revisions ----------------------------------------------------------------------------------------------


def create_table(name: str, *columns: Any, **kwargs: Any) -> None:
    """``op.create_table`` unless the table exists (a database made before migrations, by ``create_all``)."""
    if not sa.inspect(op.get_bind()).has_table(name):
        op.create_table(name, *columns, **kwargs)


def add_column(table: str, column: sa.Column[Any]) -> None:
    """``op.add_column`` unless the table has it (added by a release before migrations)."""
    if column.name not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}:
        op.add_column(table, column)
