"""Settings: ``config.toml`` -> frozen dataclasses, validated once at start-up.

Layers, later ones win: the defaults below, the file, the file's ``[profiles.<name>]`` overlay (seed 000:
one base config, each developer overriding only what differs), ``GAMESERVER_<SECTION>__<KEY>`` environment
variables, then command-line overrides. Unknown keys and bad values raise :class:`ConfigError` naming the
key in full (``gate.tcp_port``). Code receives one finished, read-only :class:`Config`.

Game modules own their settings: a module's ``__init__.py`` names a dataclass of :func:`setting` fields as
``SETTINGS``, and its section is ``[modules.<name>]``. The file is read before the modules are imported, so
:func:`load` keeps those sections as they were written and :meth:`Config.bind_modules` checks them against the
modules' dataclasses at start-up (and in ``check-config``), with the same errors as core sections; a handler reads
its module's section with ``config.module("leaderboard", LeaderboardSettings)``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gameserver import frozen
from gameserver.errors import ConfigError

S = TypeVar("S")

ENV_PREFIX = "GAMESERVER_"
ROLES = ("gate", "chat", "auth", "worker")
BUSES = ("auto", "local", "redis", "nats")
LOG_LEVELS = ("debug", "info", "warning", "error")
SYSLOG_FACILITIES = ("user", "daemon", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7")
CONSOLE_MODES = ("auto", "always", "never")
MIGRATE_MODES = ("auto", "upgrade", "check", "off")  # db.migrate: what start-up does with the schema
FILTER_MODES = ("off", "mask", "reject")
LISTENERS = ("gate-tcp", "ws", "chat-tcp", "http")  # the listeners' names in app.ports, metrics and the node registry


def setting(
    default: Any,
    *,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[str, ...] | None = None,
    secret: bool = False,
) -> Any:
    """A config field with its constraints; ``secret`` values are masked by ``check-config``."""
    meta = {"min": min, "max": max, "choices": choices, "secret": secret}
    if isinstance(default, (list, dict)):
        raise TypeError("use a tuple for list defaults: config is immutable")
    return field(default=default, metadata=meta)


MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = setting("127.0.0.1")
    roles: tuple[str, ...] = setting(ROLES, choices=ROLES)
    data_dir: str = setting("var")
    node_id: str = setting("")
    bus: str = setting("auto", choices=BUSES)
    shutdown_grace: float = setting(10.0, min=0)
    backlog: int = setting(4096, min=1, max=65535)
    advertise_host: str = setting("")
    advertise_urls: tuple[str, ...] = setting(())
    dev: bool = setting(False)

    def __post_init__(self) -> None:
        for item in self.advertise_urls:
            name, sep, url = item.partition("=")
            if not sep or name.strip() not in LISTENERS or "://" not in url:
                raise ConfigError(
                    f"server.advertise_urls: {item!r} is not LISTENER=URL with LISTENER one of {', '.join(LISTENERS)} "
                    '(e.g. "ws=wss://play.example.com")'
                )


@dataclass(frozen=True, slots=True)
class GateConfig:
    tcp_port: int = setting(8880, min=0, max=MAX_PORT)
    ws_port: int = setting(8881, min=0, max=MAX_PORT)
    max_frame: int = setting(64 * 1024, min=64, max=16 * 1024 * 1024)
    max_connections: int = setting(10_000, min=1)
    max_per_address: int = setting(256, min=0)
    proxy_protocol: bool = setting(False)
    ws_proxy_protocol: bool = setting(False)
    handshake_timeout: float = setting(10.0, min=0.1)
    idle_timeout: float = setting(300.0, min=1)
    frame_timeout: float = setting(10.0, min=0.1)
    rate: float = setting(200.0, min=0.1)
    burst: int = setting(400, min=1)
    write_buffer: int = setting(1024 * 1024, min=1024)


@dataclass(frozen=True, slots=True)
class ChatConfig:
    tcp_port: int = setting(8890, min=0, max=MAX_PORT)
    max_line: int = setting(4096, min=64, max=1024 * 1024)
    rate: float = setting(5.0, min=0.01)
    burst: int = setting(10, min=1)
    abuse_limit: int = setting(20, min=1)
    abuse_window: float = setting(10.0, min=0.1)
    login_timeout: float = setting(10.0, min=0.05)
    idle_timeout: float = setting(300.0, min=0.1)
    line_timeout: float = setting(10.0, min=0.05)
    max_connections: int = setting(10_000, min=1)
    max_per_address: int = setting(256, min=0)
    proxy_protocol: bool = setting(False)
    send_queue: int = setting(256 * 1024, min=1024)
    send_timeout: float = setting(10.0, min=0.0)
    flush_interval: float = setting(0.03, min=0.0, max=1.0)
    system_name: str = setting("system")
    history: int = setting(50, min=0, max=10_000)
    history_on_join: int = setting(0, min=0, max=10_000)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    timeout: float = setting(10.0, min=0.001)
    max_inflight: int = setting(10_000, min=1)
    idempotency_ttl: float = setting(86400.0, min=1)


@dataclass(frozen=True, slots=True)
class RemoteConfig:
    """Requests between gates and workers in different processes (``server.bus`` redis or nats)."""

    nats_url: str = setting("nats://127.0.0.1:4222", secret=True)
    request_timeout: float = setting(0.0, min=0)
    gate_inflight: int = setting(10_000, min=1)
    queue_max: int = setting(100_000, min=1)
    batch: int = setting(64, min=1, max=10_000)
    reclaim_after: float = setting(2.0, min=0.05)
    heartbeat: float = setting(1.0, min=0.05)
    gate_ttl: float = setting(5.0, min=0.1)
    mid_ttl: float = setting(10.0, min=0.1)

    def __post_init__(self) -> None:
        if self.gate_ttl < 2 * self.heartbeat:
            raise ConfigError(
                f"remote.gate_ttl: must be at least twice remote.heartbeat ({self.heartbeat:g}s), got "
                f"{self.gate_ttl:g}s: one late heartbeat must not drop a live gate"
            )


@dataclass(frozen=True, slots=True)
class JobsConfig:
    concurrency: int = setting(4, min=0, max=10_000)
    timeout: float = setting(60.0, min=0.001)
    max_tries: int = setting(5, min=1, max=1000)
    backoff: float = setting(1.0, min=0)
    max_backoff: float = setting(3600.0, min=0)
    reclaim_after: float = setting(30.0, min=0.05)
    poll: float = setting(1.0, min=0.005, max=60)
    key_ttl: float = setting(86400.0, min=1)
    dead_max: int = setting(10_000, min=1)


@dataclass(frozen=True, slots=True)
class HttpConfig:
    port: int = setting(8000, min=0, max=MAX_PORT)
    enabled: bool = setting(True)
    max_body: int = setting(64 * 1024, min=1024)
    max_connections: int = setting(10_000, min=1)
    max_per_address: int = setting(256, min=0)
    rate: float = setting(100.0, min=0.01)
    burst: int = setting(500, min=1)
    header_timeout: float = setting(10.0, min=0.05)
    handler_timeout: float = setting(10.0, min=0.01)
    timeout: float = setting(30.0, min=0.1)
    trusted_proxies: tuple[str, ...] = setting(())

    def __post_init__(self) -> None:
        for value in self.trusted_proxies:
            try:
                ipaddress.ip_network(value.strip())
            except ValueError:
                raise ConfigError(
                    f"http.trusted_proxies: {value!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8)"
                ) from None


@dataclass(frozen=True, slots=True)
class DbConfig:
    url: str = setting("", secret=True)
    pool_size: int = setting(10, min=1)
    connect_timeout: float = setting(3.0, min=0.1)
    query_timeout: float = setting(4.0, min=0.1)
    retries: int = setting(3, min=0, max=10)
    retry_delay: float = setting(0.05, min=0)
    echo: bool = setting(False)
    migrate: str = setting("auto", choices=MIGRATE_MODES)


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str = setting("", secret=True)
    prefix: str = setting("gs:")
    connect_timeout: float = setting(2.0, min=0.1)
    timeout: float = setting(5.0, min=0.1)
    max_connections: int = setting(100, min=1)


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = setting("info", choices=LOG_LEVELS)
    format: str = setting("text", choices=("text", "json"))
    file: str = setting("")
    requests: bool = setting(False)
    syslog: str = setting("")
    syslog_facility: str = setting("user", choices=SYSLOG_FACILITIES)


@dataclass(frozen=True, slots=True)
class ModulesConfig:
    paths: tuple[str, ...] = setting(())
    disabled: tuple[str, ...] = setting(())
    reload: bool = setting(False)
    reload_poll: float = setting(1.0, min=0.01)


@dataclass(frozen=True, slots=True)
class GameConfig:
    config: str = setting("game")
    poll: float = setting(1.0, min=0.01)


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    enabled: str = setting("auto", choices=CONSOLE_MODES)
    log_lines: int = setting(1000, min=10)


@dataclass(frozen=True, slots=True)
class AdminConfig:
    enabled: bool = setting(True)
    session_ttl: float = setting(8 * 3600.0, min=60)
    cookie_secure: bool = setting(False)
    max_failures_name: int = setting(5, min=1)
    max_failures_addr: int = setting(50, min=1)
    failure_window: float = setting(900.0, min=1)
    ship_logs: bool = setting(True)
    ship_level: str = setting("info", choices=LOG_LEVELS)
    log_stream_max: int = setting(100_000, min=100)
    metrics_interval: float = setting(5.0, min=0.05)
    metrics_window: float = setting(3600.0, min=1)


MIN_SECRET_BYTES = 32  # HS256 keys of at least 256 bits (RFC 7518, 3.2)


@dataclass(frozen=True, slots=True)
class AuthConfig:
    secret: str = setting("", secret=True)
    issuer: str = setting("gameserver")
    token_ttl: float = setting(86400.0, min=1)
    nonce_ttl: float = setting(30.0, min=0.01)
    world: int = setting(1, min=0)
    hash_memory_kib: int = setting(19456, min=8)
    hash_time_cost: int = setting(2, min=1)
    hash_parallelism: int = setting(1, min=1)
    username_min: int = setting(3, min=1)
    username_max: int = setting(32, min=1, max=64)
    password_min: int = setting(8, min=1)
    password_max: int = setting(128, min=8, max=1024)
    max_failures_user: int = setting(10, min=1)
    max_failures_addr: int = setting(100, min=1)
    failure_window: float = setting(900.0, min=1)
    register_limit: int = setting(20, min=1)
    register_window: float = setting(3600.0, min=1)
    session_max_age: float = setting(30 * 86400.0, min=60)
    admin_key: str = setting("", secret=True)
    single_session: bool = setting(False)

    def __post_init__(self) -> None:
        if self.secret and len(self.secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"auth.secret: must be at least {MIN_SECRET_BYTES} bytes (256 bits) to sign HS256 tokens safely, "
                f"got {len(self.secret.encode())}; set a long random value (e.g. `openssl rand -base64 48`) "
                "or leave it empty to generate one in server.data_dir"
            )


@dataclass(frozen=True, slots=True)
class MailConfig:
    """The mailbox feature (Maildir store, ``POST /mail/*``); the ``mail.*`` functions' own settings are in
    ``[modules.mail]``."""

    root: str = setting("")
    admin_key: str = setting("", secret=True)
    max_subject: int = setting(100, min=1, max=1000)
    max_body: int = setting(4000, min=1, max=60_000)
    max_items: int = setting(20, min=1, max=1000)
    max_messages: int = setting(500, min=1)


MOVED = {
    "family": "modules.family",
    "friends": "modules.friends",
    "leaderboard": "modules.leaderboard",
    "mail.page_size": "modules.mail.page_size",
    "mail.send_rate": "modules.mail.send_rate",
    "mail.send_window": "modules.mail.send_window",
    "mail.broadcast_batch": "modules.mail.broadcast_batch",
}
"""Settings that moved into a module's section: an old config names the new place instead of "unknown"."""


@dataclass(frozen=True, slots=True)
class NodesConfig:
    heartbeat: float = setting(2.0, min=0.05)
    ttl: float = setting(6.0, min=0.1)
    admin_key: str = setting("", secret=True)

    def __post_init__(self) -> None:
        if self.ttl < 2 * self.heartbeat:
            raise ConfigError(
                f"nodes.ttl: must be at least twice nodes.heartbeat ({self.heartbeat:g}s), got {self.ttl:g}s: "
                "one late heartbeat must not drop a live node"
            )


@dataclass(frozen=True, slots=True)
class ModerationConfig:
    admin_key: str = setting("", secret=True)
    filter: str = setting("mask", choices=FILTER_MODES)
    words: tuple[str, ...] = setting(())
    log_max: int = setting(10_000, min=10)
    report_rate: int = setting(10, min=1)
    report_window: float = setting(3600.0, min=1)


@dataclass(frozen=True, slots=True)
class PresenceConfig:
    ttl: float = setting(30.0, min=1)
    max_watch: int = setting(200, min=1)


@dataclass(frozen=True, slots=True)
class NotificationsConfig:
    max: int = setting(100, min=0)
    ttl: float = setting(7 * 86400.0, min=1)


@dataclass(frozen=True, slots=True)
class SessionConfig:
    resume_grace: float = setting(30.0, min=1)
    resume_buffer: int = setting(256, min=1)
    resume_bytes: int = setting(262_144, min=1024)


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    remote: RemoteConfig = field(default_factory=RemoteConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    db: DbConfig = field(default_factory=DbConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    log: LogConfig = field(default_factory=LogConfig)
    modules: ModulesConfig = field(default_factory=ModulesConfig)
    mail: MailConfig = field(default_factory=MailConfig)
    chat: ChatConfig = field(default_factory=ChatConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    game: GameConfig = field(default_factory=GameConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    nodes: NodesConfig = field(default_factory=NodesConfig)
    moderation: ModerationConfig = field(default_factory=ModerationConfig)
    presence: PresenceConfig = field(default_factory=PresenceConfig)
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    session: SessionConfig = field(default_factory=SessionConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    profile: str = ""
    source: str = ""
    # Plain dicts (dataclasses.asdict copies a Config), read-only by convention as the rest.
    module_sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """``[modules.<name>]`` as written (file, profile, environment, overrides), before :meth:`bind_modules`."""
    module_settings: Mapping[str, Any] = field(default_factory=dict)
    """The checked sections by module name, once :meth:`bind_modules` has seen the modules' ``SETTINGS``."""
    _built: dict[tuple[str, type], Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def data_path(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def bus_backend(self) -> str:
        """``local``, ``redis`` or ``nats``: ``server.bus``, with ``auto`` meaning redis when ``redis.url`` is set."""
        if self.server.bus == "auto":
            return "redis" if self.redis.url else "local"
        return self.server.bus

    @property
    def request_timeout(self) -> float:
        """Seconds a gate waits for a remote worker's reply before answering ``timeout`` itself."""
        return self.remote.request_timeout or self.worker.timeout + 1.0

    @property
    def mail_path(self) -> Path:
        return Path(self.mail.root) if self.mail.root else self.data_path / "mail"

    def replace(self, **sections: Any) -> Config:
        """A copy with whole sections or single keys changed: ``replace(gate={"tcp_port": 0})``, a module's
        ``replace(modules={"mail": {"send_rate": 2}})``; bound module sections are checked again."""
        fresh = build(merge(as_dict(self), sections), profile=self.profile, source=self.source)
        if not self.module_settings:
            return fresh
        return fresh.bind_modules({name: type(value) for name, value in self.module_settings.items()})

    def bind_modules(self, declared: Mapping[str, type[Any] | None], *, ignored: Iterable[str] = ()) -> Config:
        """A copy whose ``[modules.<name>]`` sections are checked against the modules' settings dataclasses.

        Args:
            declared: each loaded module's ``SETTINGS`` dataclass by name (None: the module has no settings).
            ignored: module names whose sections may stay unchecked (``modules.disabled``: not loaded).

        Raises:
            ConfigError: a section of no loaded module, a section for a module without settings, an unknown key
                or a bad value, named in full (``modules.mail.page_size``).
        """
        ignored = set(ignored)
        for name in self.module_sections:
            if name in ignored:
                continue
            if name not in declared:
                known = ", ".join(sorted(n for n, cls in declared.items() if cls is not None)) or "none"
                raise ConfigError(f"modules.{name}: no loaded module {name} (modules with settings: {known})")
            if declared[name] is None:
                raise ConfigError(f"modules.{name}: module {name} declares no SETTINGS")
        built = {
            name: _build_section(cls, self.module_sections.get(name, {}), f"modules.{name}")
            for name, cls in declared.items()
            if cls is not None
        }
        return dataclasses.replace(self, module_settings=built, _built={})

    def module(self, name: str, cls: type[S]) -> S:
        """The ``[modules.<name>]`` section as ``cls`` (the module's ``SETTINGS``): checked at start-up by
        :meth:`bind_modules`; on a config that was not bound (a unit test's ``Config()``) built on first use.

        Raises:
            ConfigError: an unbound section with an unknown key or a bad value.
        """
        value = self.module_settings.get(name)
        if type(value) is cls:
            return value
        key = (name, cls)
        value = self._built.get(key)
        if value is None:
            value = self._built[key] = _build_section(cls, self.module_sections.get(name, {}), f"modules.{name}")
        return value  # type: ignore[no-any-return]


def load(
    path: str | Path | None = None,
    *,
    profile: str = "",
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Read the layers and return the finished config.

    Args:
        path: a TOML file; None means ``./config.toml`` if it exists (the single executable: else the one beside
            it, :mod:`gameserver.frozen`), else the defaults alone.
        profile: a ``[profiles.<name>]`` section of the file to lay over its base.
        env: the environment to read ``GAMESERVER_*`` variables from (default ``os.environ``).
        overrides: ``{"section.key": value}`` from the command line.

    Raises:
        ConfigError: a missing file or profile, an unknown key, or a bad value.
    """
    data: dict[str, Any] = {}
    source = "defaults"
    if path is None:
        path = "config.toml" if Path("config.toml").is_file() else frozen.config_file()
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror}") from None
        source = str(path)
    profiles = data.pop("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError("profiles: expected a table of [profiles.<name>] sections")
    data = merge(frozen.defaults(), data)
    env = os.environ if env is None else env
    profile = profile or env.get(ENV_PREFIX + "PROFILE", "")
    if profile:
        if profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise ConfigError(f"profile {profile!r} is not in {source} (profiles: {known})")
        if not isinstance(profiles[profile], dict):
            raise ConfigError(f"profiles.{profile}: expected a table")
        data = merge(data, profiles[profile])
    data = merge(data, _from_env(env))
    for dotted, value in (overrides or {}).items():
        data = merge(data, _nested(dotted.split("."), value))
    return build(data, profile=profile, source=source)


def _nested(path: list[str], value: Any) -> dict[str, Any]:
    for key in reversed(path[1:]):
        value = {key: value}
    return {path[0]: value}


def build(data: Mapping[str, Any], *, profile: str = "", source: str = "") -> Config:
    sections = {f.name: f for f in dataclasses.fields(Config) if dataclasses.is_dataclass(f.default_factory)}
    for name in data:
        if name not in sections:
            if name in MOVED:
                raise ConfigError(f"{name}: moved to [{MOVED[name]}] (the module owns its settings)")
            raise ConfigError(f"{name}: unknown section (known: {', '.join(sections)})")
    built = {}
    module_sections: dict[str, Mapping[str, Any]] = {}
    for name, f in sections.items():
        section = data.get(name, {})
        if not isinstance(section, Mapping):
            raise ConfigError(f"{name}: expected a table")
        if name == "modules":
            core = {field.name for field in dataclasses.fields(ModulesConfig)}
            module_sections = {k: v for k, v in section.items() if k not in core and isinstance(v, Mapping)}
            for module in module_sections:
                if not module.isidentifier():
                    raise ConfigError(f"modules.{module}: not a module name")
            section = {k: v for k, v in section.items() if k not in module_sections}
        for key in section:
            if f"{name}.{key}" in MOVED:
                raise ConfigError(f"{name}.{key}: moved to {MOVED[f'{name}.{key}']} (the module owns its settings)")
        built[name] = _build_section(f.default_factory, section, name)  # type: ignore[arg-type]
    return Config(**built, profile=profile, source=source, module_sections=module_sections)


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def as_dict(config: Config, *, mask_secrets: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        section = getattr(config, f.name)
        if dataclasses.is_dataclass(section):
            result[f.name] = _section_dict(section, mask_secrets)
    modules = result["modules"]
    for name, raw in config.module_sections.items():
        modules[name] = dict(raw)
    for name, settings in config.module_settings.items():
        modules[name] = _section_dict(settings, mask_secrets)
    return result


def _section_dict(section: Any, mask_secrets: bool) -> dict[str, Any]:
    values = {}
    for sf in dataclasses.fields(section):
        value = getattr(section, sf.name)
        if mask_secrets and sf.metadata.get("secret") and value:
            value = "***"
        values[sf.name] = list(value) if isinstance(value, tuple) else value
    return values


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        # GAMESERVER_GATE__TCP_PORT, GAMESERVER_MODULES__MAIL__PAGE_SIZE
        data = merge(data, _nested(name[len(ENV_PREFIX) :].lower().split("__"), Text(raw)))
    return data


class Text(str):
    """A value given as text (a ``GAMESERVER_*`` variable, ``--set``), read by the type of the setting it sets:
    ``node_id=123`` stays the string "123", ``tcp_port=9000`` becomes an int, ``roles=gate,worker`` a list."""


def _parse_text(text: Text, hint: Any) -> Any:
    if hint is str or (typing.get_origin(hint) is tuple and not text.lstrip().startswith("[")):
        return str(text)
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return str(text)


def _build_section(cls: type[Any], data: Mapping[str, Any], section: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise ConfigError(f"{section}.{key}: unknown key (known: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        if name not in data:
            continue
        values[name] = _check(f"{section}.{name}", data[name], hints[name], f.metadata)
    return cls(**values)


def _check(name: str, value: Any, hint: Any, meta: Mapping[str, Any]) -> Any:
    if isinstance(value, Text):
        value = _parse_text(value, hint)
    origin = typing.get_origin(hint)
    if origin is tuple:
        (item_type, _) = typing.get_args(hint)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        items = tuple(_check(f"{name}[{i}]", v, item_type, {}) for i, v in enumerate(value))
        if meta.get("choices"):
            for item in items:
                if item not in meta["choices"]:
                    raise ConfigError(f"{name}: {item!r} is not one of {', '.join(meta['choices'])}")
        return items
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:  # NaN fails every check
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        value = float(value)
    elif hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
    elif isinstance(hint, types.UnionType) or origin is not None:
        raise TypeError(f"{name}: unsupported config type {hint}")
    if meta.get("min") is not None and value < meta["min"]:
        raise ConfigError(f"{name}: must be at least {meta['min']}, got {value!r}")
    if meta.get("max") is not None and value > meta["max"]:
        raise ConfigError(f"{name}: must be at most {meta['max']}, got {value!r}")
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(meta['choices'])}")
    return value
