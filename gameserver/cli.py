"""``gameserver run | check-config | migrate | new | client | instances | nodes | jobs | admin | enums | sdk``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from gameserver import __version__, frozen
from gameserver.config import ROLES, Config, Text, as_dict, load
from gameserver.errors import ConfigError, ModuleError, PortInUse

log = logging.getLogger("gameserver.cli")

# flag -> the setting it overrides
PORT_FLAGS = {
    "gate_port": "gate.tcp_port",
    "ws_port": "gate.ws_port",
    "chat_port": "chat.tcp_port",
    "http_port": "http.port",
}


def _config_args(parser: argparse.ArgumentParser, *, server: bool = True) -> None:
    """The flags that pick the config; with ``server``, also those that change what a server listens on."""
    parser.add_argument("--config", "-c", help="config file (default ./config.toml if present)")
    parser.add_argument("--profile", "-p", default="", help="a [profiles.NAME] section to lay over the base")
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override any setting (repeatable)"
    )
    if server:
        _server_args(parser)


def _server_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--roles", help=f"comma-separated subset of {','.join(ROLES)}")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 opens it up)")
    parser.add_argument("--gate-port", type=int, help="raw TCP gate port (default 8880)")
    parser.add_argument("--ws-port", type=int, help="WebSocket port (default 8881)")
    parser.add_argument("--chat-port", type=int, help="raw TCP chat edge port (default 8890)")
    parser.add_argument("--http-port", type=int, help="HTTP port (default 8000)")
    parser.add_argument("--data-dir", help="where the SQLite file, secrets and mail live (default ./var)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"--set {item}: expected SECTION.KEY=VALUE")
        overrides[key.strip()] = Text(raw)
    if getattr(args, "roles", None):
        overrides["server.roles"] = [r.strip() for r in args.roles.split(",") if r.strip()]
    if getattr(args, "host", None):
        overrides["server.host"] = args.host
    if getattr(args, "data_dir", None):
        overrides["server.data_dir"] = args.data_dir
    if getattr(args, "log_level", None):
        overrides["log.level"] = args.log_level
    if getattr(args, "reload", False):
        overrides["modules.reload"] = True
        overrides["server.dev"] = True  # a developer's loop: crashes answer with their exception
    for flag, key in PORT_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    return overrides


def load_config(args: argparse.Namespace) -> Config:
    return load(args.config, profile=args.profile, overrides=_overrides(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gameserver", description="An asyncio game server.")
    parser.add_argument("--version", action="version", version=f"gameserver {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the server")
    _config_args(run)
    run.add_argument("--reload", action="store_true", help="hot-reload module packages when their files change")
    client = commands.add_parser("client", help="a terminal game client for play-testing (gate over WebSocket)")
    _config_args(client, server=False)
    client.add_argument("--url", default="", help="gate WebSocket URL (default: ws://HOST:WS_PORT/gate from config)")
    client.add_argument(
        "--http-url", default="", help="HTTP base URL, for `functions` (default: http://HOST:HTTP_PORT from config)"
    )
    client.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a reply (default 10)")
    instances = commands.add_parser("instances", help="per-developer servers dev1..devN side by side")
    instances.add_argument("--config", "-c", help="the config template (default ./config.toml)")
    instances_commands = instances.add_subparsers(dest="instances_command", required=True)
    start = instances_commands.add_parser("start", help="start dev1..devN and wait until they are healthy")
    start.add_argument("count", type=int, help="how many instances")
    instances_commands.add_parser("status", help="show each instance: PID, state, ports, data dir, log file")
    stop = instances_commands.add_parser("stop", help="stop instances by their PID files (all if none named)")
    stop.add_argument("names", nargs="*", help="dev1 dev2 ... or 1 2 ...")
    restart = instances_commands.add_parser("restart", help="restart one instance and wait until it is healthy")
    restart.add_argument("name", help="dev1, dev2, ... or 1, 2, ...")
    restart.add_argument("--code", help="run it in this folder (a pushed checkout: its modules, its game data)")
    nodes = commands.add_parser("nodes", help="list the live nodes in the node registry (this config's Redis)")
    _config_args(nodes)
    nodes.add_argument("--role", choices=ROLES, help="only the nodes with this role")
    nodes.add_argument("--json", action="store_true", help="print JSON, as GET /nodes answers")
    _jobs_parser(commands)
    admin = commands.add_parser("admin", help="operations-console accounts (this config's database)")
    admin_create = admin.add_subparsers(dest="admin_command", required=True).add_parser(
        "create", help="create an admin account (password from the terminal, or stdin's first line)"
    )
    admin_create.add_argument("name")
    admin_create.add_argument("--role", required=True, choices=("viewer", "moderator", "admin"))
    _config_args(admin_create, server=False)
    check = commands.add_parser("check-config", help="print the effective config (secrets masked) and exit")
    _config_args(check)
    migrate = commands.add_parser(
        "migrate", help="upgrade the database schema to this release (the core's and every module's revisions)"
    )
    _config_args(migrate)
    migrate.add_argument("--check", action="store_true", help="change nothing; exit 1 if revisions are pending")
    migrate.add_argument("--new", metavar="MODULE", help="write an empty revision into MODULE's migrations/ folder")
    migrate.add_argument("--message", "-m", default="", help="the new revision's message (with --new)")
    enums = commands.add_parser("enums", help="the shared enums for client code")
    enums_commands = enums.add_subparsers(dest="enums_command", required=True)
    export = enums_commands.add_parser("export", help="write enums/ as json, csharp, lua or typescript")
    export.add_argument("--format", "-f", default="json", choices=("json", "csharp", "lua", "typescript"))
    export.add_argument("--out", "-o", help="file to write (default stdout)")
    new = commands.add_parser("new", help="start something from a template: `new module NAME`")
    new_commands = new.add_subparsers(dest="new_command", required=True)
    new_module = new_commands.add_parser(
        "module", help="a module package: a handler, a table, settings and a passing test"
    )
    new_module.add_argument("name", help="the package's name, the first part of its functions' names (NAME.greet)")
    new_module.add_argument(
        "--into",
        help="the folder of module packages to write it in (default: modules/ in a checkout, else game_modules/)",
    )
    new_module.add_argument("--tests", default="tests/modules", help="where its test goes (default tests/modules)")
    sdk = commands.add_parser("sdk", help="generate a client SDK's typed layer from the modules and enums")
    _config_args(sdk)
    sdk.add_argument("language", choices=("typescript", "csharp"))
    sdk.add_argument("--out", "-o", required=True, help="folder to write (e.g. clients/typescript/src/generated)")
    return parser


def _jobs_parser(commands: Any) -> None:
    jobs = commands.add_parser("jobs", help="the background job queue and its dead letters (this config's Redis)")
    actions = jobs.add_subparsers(dest="jobs_command", required=True)
    status = actions.add_parser("status", help="how many jobs are ready, delayed and dead")
    dead = actions.add_parser("dead", help="list the dead letters, newest first")
    dead.add_argument("--limit", type=int, help="how many at most (default 50; 0: all)")
    for parser in (status, dead):
        _config_args(parser)
        parser.add_argument("--json", action="store_true", help="print JSON (with the whole error, for dead)")
    for name, help_text in (
        ("retry", "put dead letters back in the queue, due now, with fresh tries"),
        ("drop", "delete dead letters"),
    ):
        action = actions.add_parser(name, help=help_text)
        _config_args(action)
        action.add_argument("ids", nargs="*", metavar="ID", help="job ids (or entry ids) as `jobs dead` lists them")
        action.add_argument("--all", action="store_true", help="every dead letter")


def main(argv: Sequence[str] | None = None) -> int:
    frozen.add_modules_folder()  # the single executable: modules/ beside it joins the shipped ones
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "jobs" and args.jobs_command in ("retry", "drop") and bool(args.ids) == args.all:
        parser.error(f"jobs {args.jobs_command}: give dead-letter ids or --all, not both and not neither")
    if args.command == "jobs" and (getattr(args, "limit", None) or 0) < 0:
        parser.error("jobs dead: --limit must be 0 (all) or more")
    if args.command == "enums":
        return export_enums(args.format, args.out)
    if args.command == "instances":
        return run_instances(args)
    if args.command == "new":
        from gameserver.commands import new as new_command

        return new_command.main(args.new_command, args.name, args.into, args.tests)
    try:
        config = load_config(args)
    except ConfigError as exc:
        print(f"gameserver: config error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        try:
            config = bind_modules(config)
        except ConfigError as exc:
            print(f"gameserver: config error: {exc}", file=sys.stderr)
            return 2
        print(
            json.dumps(
                {"source": config.source, "profile": config.profile, **as_dict(config, mask_secrets=True)}, indent=2
            )
        )
        return 0
    if args.command == "migrate":
        return migrate(config, check=args.check, new=args.new, message=args.message)
    if args.command == "nodes":
        from gameserver.features.nodes import command

        return command.main(config, role=args.role, as_json=args.json)
    if args.command == "jobs":
        from gameserver.features.jobs import command as jobs_command

        return jobs_command.main(
            config,
            args.jobs_command,
            ids=getattr(args, "ids", ()),
            all_=getattr(args, "all", False),
            as_json=getattr(args, "json", False),
            limit=getattr(args, "limit", None),
        )
    if args.command == "sdk":
        return generate_sdk(config, args.language, args.out)
    if args.command == "admin":
        from gameserver.features.admin import command as admin_command

        return admin_command.create(config, args.name, args.role)
    if args.command == "client":
        from gameserver.commands import client

        return client.main(config, url=args.url, http=args.http_url, timeout=args.timeout)
    return run(config)


def bind_modules(config: Config) -> Config:
    """``config`` with the loaded modules' sections checked (importing the modules, as start-up does).

    Raises:
        ConfigError: a module section or a module is wrong.
    """
    from gameserver.dispatch.registry import discover, settings_of

    modules = discover(config.modules.paths, config.modules.disabled)
    return config.bind_modules(settings_of(modules), ignored=config.modules.disabled)


def migrate(config: Config, *, check: bool, new: str | None, message: str) -> int:
    """``gameserver migrate``: upgrade (or with ``check``, report) the schema; ``new``: start a module's revision."""
    from pathlib import Path

    import sqlalchemy as sa

    from gameserver.dispatch.registry import discover, settings_of
    from gameserver.storage.migrate import Schema, new_revision
    from gameserver.storage.sql import Sql, short_error

    try:
        modules = discover(config.modules.paths, config.modules.disabled)
        config = config.bind_modules(settings_of(modules), ignored=config.modules.disabled)
    except ConfigError as exc:
        print(f"gameserver: config error: {exc}", file=sys.stderr)
        return 2
    schema = Schema.of(modules)
    if new:
        if new not in modules:
            print(f"gameserver: migrate --new: no loaded module {new}", file=sys.stderr)
            return 2
        folder = Path(modules[new].__file__ or "").parent / "migrations"
        script = new_revision(
            new, folder, message or "change", db_folders=list(dict.fromkeys([*schema.folders, folder]))
        )
        print(f"gameserver: wrote {script.path}", file=sys.stderr)
        return 0

    async def go() -> int:
        config.data_path.mkdir(parents=True, exist_ok=True)
        db = Sql.open(config.db, config.data_path)
        try:
            if check:
                status = await schema.status(db)
                if status.pending:
                    print(f"gameserver: {len(status.pending)} revisions pending: {', '.join(status.pending)}")
                    return 1
                print(f"gameserver: schema at head ({', '.join(status.current)})")
                return 0
            applied = await schema.upgrade(db)
            status = await schema.status(db)
            done = f"applied {', '.join(applied)}" if applied else "nothing to apply"
            print(f"gameserver: schema at head ({', '.join(status.current)}): {done}")
            return 0
        finally:
            await db.close()

    try:
        return asyncio.run(go())
    except (sa.exc.SQLAlchemyError, OSError, TimeoutError) as exc:
        print(f"gameserver: migrate: {short_error(exc)}", file=sys.stderr)
        return 1


def run_instances(args: argparse.Namespace) -> int:
    from gameserver.commands import instances

    try:
        if args.instances_command == "start":
            return instances.start(args.config, args.count)
        if args.instances_command == "stop":
            return instances.stop(args.config, args.names)
        if args.instances_command == "restart":
            return instances.restart(args.config, args.name, code=args.code)
        return instances.status(args.config)
    except ConfigError as exc:
        print(f"gameserver: config error: {exc}", file=sys.stderr)
        return 2


def export_enums(fmt: str, out: str | None) -> int:
    from gameserver.commands.enums_export import export

    text = export(fmt)
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def generate_sdk(config: Config, language: str, out: str) -> int:
    """Describe the modules ``config`` loads (its ``modules.paths``, less ``modules.disabled``) and write the
    language's typed layer into ``out``, removing the files an earlier run generated there and this one did not."""
    from pathlib import Path

    from gameserver import sdk
    from gameserver.sdk.model import describe

    try:
        api = describe(
            paths=config.modules.paths, disabled=config.modules.disabled, default_timeout=config.worker.timeout
        )
        written, removed = sdk.write(Path(out), sdk.render(language, api), language)
    except (ConfigError, ValueError) as exc:
        print(f"gameserver: sdk {language}: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {Path(out) / path}")
    for path in removed:
        print(f"removed {Path(out) / path}")
    if not written and not removed:
        print(f"{out}: up to date")
    return 0


def run(config: Config) -> int:
    import uvloop

    from gameserver.logs import setup_logging

    setup_logging(config.log, ident=f"gameserver-{config.server.node_id}" if config.server.node_id else "gameserver")
    try:
        return uvloop.run(_serve(config))
    except ModuleError as exc:  # the one line a failed reload logs too; the traceback below it for code errors
        log.error("module error: %s", exc, exc_info=exc.__cause__)
        return 2
    except ConfigError as exc:
        log.error("config error: %s", exc)
        return 2
    except PortInUse as exc:
        flag = next((f"--{flag.replace('_', '-')}" for flag, key in PORT_FLAGS.items() if key == exc.setting), "")
        how = f"{flag} or --set {exc.setting}=PORT" if flag else f"--set {exc.setting}=PORT"
        log.error(
            "cannot start: %s:%d, the %s listener's port, is already in use (another gameserver?): "
            "choose another with %s",
            exc.host,
            exc.port,
            exc.listener,
            how,
        )
        return 1
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1


def where_things_are(config: Config, ports: dict[str, int], *, console: bool) -> list[str]:
    """The start-up lines that say where a developer goes next: the console's URL, the terminal client."""
    host = config.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # listening everywhere: this machine's own address reaches it
    host = f"[{host}]" if ":" in host else host
    lines = []
    if console and "http" in ports:
        lines.append(f"console: http://{host}:{ports['http']}/")
    if "ws" in ports:
        http = f" --http-url http://{host}:{ports['http']}" if "http" in ports else ""
        lines.append(f"terminal client: {_own_command()} client --url ws://{host}:{ports['ws']}/gate{http}")
    return lines


def _own_command() -> str:
    """How this program was started, to print commands a developer can paste: ``.venv/bin/gameserver`` (relative
    to the working directory when below it) or ``python -m gameserver``."""
    program = sys.argv[0] if sys.argv else ""
    if os.path.basename(program) != "gameserver":
        program = f"{sys.executable} -m gameserver"
        executable = os.path.relpath(sys.executable)
        if not executable.startswith(".."):
            program = f"{executable} -m gameserver"
        return program
    relative = os.path.relpath(program)
    return relative if not relative.startswith("..") else program


async def _serve(config: Config) -> int:
    from gameserver.app import App

    app = App(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, app.request_stop)
    await app.start()
    # What start-up built (modules, config, the function table, SQLAlchemy and library state) lives as long as
    # the process: take it out of the cycle collector's sight, so that a full collection walks only what was
    # made since. With hundreds of requests in flight their objects reach the old generation and trigger full
    # collections; over the whole heap each took ~50 ms (p99 70 ms at 500 connections, docs/benchmarks.md).
    gc.collect()
    gc.freeze()
    for line in where_things_are(config, app.ports, console="/console/api/info" in app.http_paths):
        print(line, file=sys.stderr)
    print(
        f"gameserver {__version__} node {app.node}: " + ", ".join(f"{k}={v}" for k, v in app.ports.items()),
        file=sys.stderr,
        flush=True,
    )
    await app.wait_stopping()
    log.info("stopping (grace %gs)", config.server.shutdown_grace)
    await app.stop()
    left = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    if left:
        # Requests stuck in a backend past the grace (a hung database, SQLite's busy wait in its thread): asyncio's
        # exit would wait for them, and the interpreter for the driver's threads. The grace is the promise.
        # A task may run an awaitable that is not a coroutine (asyncmy's connect context manager): no __qualname__.
        names = sorted({getattr(task.get_coro(), "__qualname__", type(task.get_coro()).__name__) for task in left})
        log.warning("exiting with %d tasks still running past the grace: %s", len(left), ", ".join(names[:5]))
        logging.shutdown()
        sys.stderr.flush()
        os._exit(0)
    return 0
