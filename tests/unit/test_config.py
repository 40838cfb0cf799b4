"""Settings (gameserver/config.py): the layers, their order, and errors that name the key in full."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from gameserver.config import Config, Text, as_dict, build, load
from gameserver.dispatch.registry import discover, settings_of
from gameserver.errors import ConfigError

REPO = Path(__file__).parents[2]
SHIPPED = REPO / "config.toml"

BASE = """
[server]
node_id = "from-file"
shutdown_grace = 3

[gate]
tcp_port = 7000
ws_port = 7001

[profiles.alpha]
gate = { tcp_port = 7100 }
log = { level = "debug" }

[profiles.beta]
server = { node_id = "beta" }
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(BASE)
    return path


def error(**kwargs: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load(**{"env": {}, **kwargs})
    return str(caught.value)


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load(env={})
    assert config == build({}, source="defaults")
    assert (config.source, config.profile) == ("defaults", "")
    assert config.server.host == "127.0.0.1"
    assert config.server.roles == ("gate", "chat", "auth", "worker")
    assert (config.gate.tcp_port, config.gate.ws_port, config.http.port) == (8880, 8881, 8000)
    assert config.gate.max_frame == 64 * 1024


def test_config_toml_in_the_working_directory_is_read(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(config_file.parent)
    config = load(env={})
    assert (config.source, config.gate.tcp_port) == ("config.toml", 7000)


def test_file(config_file: Path) -> None:
    config = load(config_file, env={})
    assert config.source == str(config_file)
    assert config.server.node_id == "from-file"
    assert config.server.shutdown_grace == 3.0 and type(config.server.shutdown_grace) is float
    assert (config.gate.tcp_port, config.gate.ws_port) == (7000, 7001)
    assert config.gate.max_frame == 64 * 1024  # not in the file: the default


def test_profile_overlays_the_file(config_file: Path) -> None:
    config = load(config_file, profile="alpha", env={})
    assert config.profile == "alpha"
    assert config.gate.tcp_port == 7100
    assert config.gate.ws_port == 7001  # the rest of [gate] stays
    assert config.log.level == "debug"
    assert config.server.node_id == "from-file"


def test_profile_from_the_environment(config_file: Path) -> None:
    assert load(config_file, env={"GAMESERVER_PROFILE": "beta"}).server.node_id == "beta"
    assert load(config_file, profile="alpha", env={"GAMESERVER_PROFILE": "beta"}).profile == "alpha"


def test_missing_profile_names_the_known_ones(config_file: Path) -> None:
    assert (
        error(path=config_file, profile="gamma") == f"profile 'gamma' is not in {config_file} (profiles: alpha, beta)"
    )


def test_missing_profile_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert error(profile="dev1") == "profile 'dev1' is not in defaults (profiles: none)"


def test_profile_that_is_not_a_table(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[profiles]\nodd = 1\n")
    assert error(path=path, profile="odd") == "profiles.odd: expected a table"


def test_environment_variables(config_file: Path) -> None:
    env = {
        "GAMESERVER_GATE__TCP_PORT": "9000",
        "GAMESERVER_WORKER__TIMEOUT": "2.5",
        "GAMESERVER_HTTP__ENABLED": "false",
        "GAMESERVER_SERVER__ROLES": "gate, worker",
        "GAMESERVER_SERVER__NODE_ID": "123",  # a string setting keeps the text
        "GAMESERVER_REDIS__PREFIX": "2024-01-01",  # not a TOML date
        "GAMESERVER_NOT_A_SETTING": "ignored",  # no SECTION__KEY
        "OTHER_GATE__TCP_PORT": "1",
    }
    config = load(config_file, profile="alpha", env=env)
    assert config.gate.tcp_port == 9000  # env beats the profile
    assert config.worker.timeout == 2.5
    assert config.http.enabled is False
    assert config.server.roles == ("gate", "worker")
    assert config.server.node_id == "123"
    assert config.redis.prefix == "2024-01-01"


def test_environment_lists_in_toml_form() -> None:
    config = load(None, env={"GAMESERVER_MODULES__DISABLED": '["a", "b"]', "GAMESERVER_MODULES__PATHS": "x"})
    assert (config.modules.disabled, config.modules.paths) == (("a", "b"), ("x",))


def test_overrides_win_over_everything(config_file: Path) -> None:
    config = load(
        config_file,
        profile="alpha",
        env={"GAMESERVER_GATE__TCP_PORT": "9000"},
        overrides={"gate.tcp_port": 9100, "server.node_id": Text("42"), "gate.ws_port": Text("9101")},
    )
    assert (config.gate.tcp_port, config.server.node_id, config.gate.ws_port) == (9100, "42", 9101)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("gate,worker", ("gate", "worker")), (" gate , worker ,", ("gate", "worker")), ("gate", ("gate",)), ("", ())],
)
def test_comma_lists_for_tuples(value: str, expected: tuple[str, ...]) -> None:
    assert load(None, env={}, overrides={"server.roles": value}).server.roles == expected


def test_lists_become_tuples() -> None:
    config = load(None, env={}, overrides={"modules.paths": ["a", "b"]})
    assert config.modules.paths == ("a", "b")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"gate.tcp_portx": 1}, "gate.tcp_portx: unknown key (known: tcp_port, "),
        ({"nosuch.key": 1}, "nosuch: unknown section (known: server, gate, "),
        ({"gate.tcp_port": "abc"}, "gate.tcp_port: expected an integer, got 'abc'"),
        ({"gate.tcp_port": Text("abc")}, "gate.tcp_port: expected an integer, got 'abc'"),
        ({"gate.tcp_port": 1.5}, "gate.tcp_port: expected an integer, got 1.5"),
        ({"gate.tcp_port": True}, "gate.tcp_port: expected an integer, got True"),
        ({"gate.tcp_port": 70000}, "gate.tcp_port: must be at most 65535, got 70000"),
        ({"gate.tcp_port": -1}, "gate.tcp_port: must be at least 0, got -1"),
        ({"worker.timeout": 0}, "worker.timeout: must be at least 0.001, got 0.0"),
        ({"worker.timeout": "fast"}, "worker.timeout: expected a number, got 'fast'"),
        ({"worker.timeout": Text("nan")}, "worker.timeout: expected a number, got nan"),
        ({"http.enabled": 1}, "http.enabled: expected true or false, got 1"),
        ({"http.enabled": Text("yes")}, "http.enabled: expected true or false, got 'yes'"),
        ({"server.host": 1}, "server.host: expected a string, got 1"),
        ({"log.level": "loud"}, "log.level: 'loud' is not one of debug, info, warning, error"),
        ({"server.roles": "gate,cook"}, "server.roles: 'cook' is not one of gate, chat, auth, worker"),
        ({"server.roles": 3}, "server.roles: expected a list, got 3"),
        ({"modules.paths": [1]}, "modules.paths[0]: expected a string, got 1"),
    ],
)
def test_bad_values_name_the_key_in_full(overrides: dict[str, Any], message: str) -> None:
    assert error(path=None, overrides=overrides).startswith(message)


def test_bad_value_in_the_file_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[gate]\ntcp_port = "8880"\n')
    assert error(path=path) == "gate.tcp_port: expected an integer, got '8880'"


def test_bad_value_in_a_profile_names_the_key(config_file: Path) -> None:
    config_file.write_text(BASE + "\n[profiles.bad]\ngate = { max_frame = 1 }\n")
    assert error(path=config_file, profile="bad") == "gate.max_frame: must be at least 64, got 1"


def test_bad_environment_value_names_the_key() -> None:
    assert error(path=None, env={"GAMESERVER_GATE__WS_PORT": "x"}) == "gate.ws_port: expected an integer, got 'x'"


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("gate = 1\n")
    assert error(path=path) == "gate: expected a table"


def test_missing_file(tmp_path: Path) -> None:
    assert error(path=tmp_path / "nope.toml") == f"config file {tmp_path / 'nope.toml'} does not exist"


def test_a_folder_is_not_a_config_file(tmp_path: Path) -> None:
    assert error(path=tmp_path).startswith(f"config file {tmp_path}: ")


def test_toml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[gate\n")
    assert error(path=path).startswith(f"{path}: ")


def test_config_is_read_only() -> None:
    config = build({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.gate.tcp_port = 1  # type: ignore[misc]


def test_replace_revalidates() -> None:
    config = build({}).replace(gate={"tcp_port": 0})
    assert config.gate.tcp_port == 0 and config.gate.ws_port == 8881
    with pytest.raises(ConfigError, match="gate.tcp_port: must be at least 0"):
        config.replace(gate={"tcp_port": -5})


def test_as_dict_masks_secrets() -> None:
    config = load(None, env={}, overrides={"db.url": "mysql+asyncmy://root:hunter2@db:3306/game"})
    assert as_dict(config)["db"]["url"] == "mysql+asyncmy://root:hunter2@db:3306/game"
    masked = as_dict(config, mask_secrets=True)
    assert masked["db"]["url"] == "***"
    assert masked["redis"]["url"] == ""  # nothing to hide
    assert "hunter2" not in repr(masked)


# The shipped config.toml is the documentation of every setting: complete, commented, and equal to the defaults.


def shipped() -> dict[str, Any]:
    with open(SHIPPED, "rb") as f:
        return tomllib.load(f)


def bound(config: Config) -> Config:
    """``config`` with the shipped modules' sections checked, as start-up does."""
    return config.bind_modules(settings_of(discover()))


def test_shipped_config_parses_and_equals_the_defaults() -> None:
    assert as_dict(bound(load(SHIPPED, env={}))) == as_dict(bound(build({})))


def test_shipped_config_shows_every_setting() -> None:
    data = shipped()
    data.pop("profiles")
    defaults = as_dict(bound(build({})))
    assert {section: set(values) for section, values in data.items()} == {
        section: set(values) for section, values in defaults.items()
    }
    for name, section in defaults["modules"].items():
        if isinstance(section, dict):
            assert set(data["modules"][name]) == set(section), name


def test_shipped_config_comments_every_setting() -> None:
    text = SHIPPED.read_text().split("[profiles.")[0]
    uncommented = [line for line in text.splitlines() if re.match(r"\w+ *=", line) and "#" not in line]
    assert uncommented == []


@pytest.mark.parametrize("profile", sorted(shipped()["profiles"]))
def test_shipped_profiles_load(profile: str) -> None:
    assert load(SHIPPED, profile=profile, env={}).profile == profile


@pytest.mark.parametrize(
    ("bus", "url", "backend"),
    [
        ("auto", "", "local"),
        ("auto", "redis://127.0.0.1:6379/0", "redis"),
        ("local", "redis://127.0.0.1:6379/0", "local"),
        ("redis", "", "redis"),
    ],
)
def test_bus_backend(bus: str, url: str, backend: str) -> None:
    config = load(None, env={}, overrides={"server.bus": bus, "redis.url": url})
    assert config.bus_backend == backend


def test_the_bus_is_chosen_once_for_the_process() -> None:
    assert error(overrides={"server.bus": "kafka"}) == "server.bus: 'kafka' is not one of auto, local, redis, nats"
    assert error(overrides={"chat.bus": "redis"}).startswith("chat.bus: unknown key")


# Module sections: [modules.<name>] is checked against the module's SETTINGS, with the core sections' errors.


def test_module_section_from_file_environment_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[modules]\npaths = []\n\n[modules.mail]\npage_size = 7\n\n[modules.leaderboard]\nmax_top = 9\n")
    env = {"GAMESERVER_MODULES__MAIL__SEND_RATE": "3"}
    config = bound(load(path, env=env, overrides={"modules.leaderboard.boards": Text("a,b")}))
    from modules.leaderboard.settings import LeaderboardSettings
    from modules.mail.settings import MailSettings

    assert config.module("mail", MailSettings) == MailSettings(page_size=7, send_rate=3)
    assert config.module("leaderboard", LeaderboardSettings) == LeaderboardSettings(boards=("a", "b"), max_top=9)
    assert as_dict(config)["modules"]["mail"]["page_size"] == 7


@pytest.mark.parametrize(
    ("modules", "message"),
    [
        ({"mail": {"page_sise": 7}}, "modules.mail.page_sise: unknown key (known: page_size, send_rate"),
        ({"mail": {"page_size": 0}}, "modules.mail.page_size: must be at least 1, got 0"),
        ({"mail": {"page_size": "7"}}, "modules.mail.page_size: expected an integer, got '7'"),
        ({"nosuch": {"x": 1}}, "modules.nosuch: no loaded module nosuch (modules with settings: family, friends"),
        ({"sys": {"x": 1}}, "modules.sys: module sys declares no SETTINGS"),
    ],
)
def test_module_section_errors_name_the_key_in_full(modules: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        bound(build({"modules": modules}))
    assert str(caught.value).startswith(message)


def test_a_disabled_modules_section_is_left_unchecked() -> None:
    config = build({"modules": {"disabled": ["leaderboard"], "leaderboard": {"whatever": 1}}})
    bound_config = config.bind_modules(settings_of(discover(disabled=["leaderboard"])), ignored=["leaderboard"])
    assert "leaderboard" not in bound_config.module_settings


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"family": {"max_members": 3}}, "family: moved to [modules.family]"),
        ({"mail": {"page_size": 3}}, "mail.page_size: moved to modules.mail.page_size"),
    ],
)
def test_settings_that_moved_into_a_module_say_where(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(data)
    assert str(caught.value).startswith(message)


def test_replace_checks_module_sections_again() -> None:
    from modules.mail.settings import MailSettings

    config = bound(build({}))
    assert config.replace(modules={"mail": {"send_rate": 2}}).module("mail", MailSettings).send_rate == 2
    with pytest.raises(ConfigError, match="modules.mail.send_rate: must be at least 1"):
        config.replace(modules={"mail": {"send_rate": 0}})


def test_an_unbound_config_builds_a_module_section_on_first_use() -> None:
    from modules.mail.settings import MailSettings

    config = build({"modules": {"mail": {"page_size": 5}}})
    assert config.module("mail", MailSettings) is config.module("mail", MailSettings)
    assert config.module("mail", MailSettings).page_size == 5
