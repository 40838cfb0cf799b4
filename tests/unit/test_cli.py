"""The command line (gameserver/cli.py), in-process: flags and ``--set`` become config overrides."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gameserver import __version__
from gameserver.cli import main

pytestmark = pytest.mark.usefixtures("cli_env")  # no ./config.toml, no GAMESERVER_* variables


def check_config(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["check-config", *argv]) == 0
    printed: dict[str, Any] = json.loads(capsys.readouterr().out)
    return printed


def config_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def test_check_config_prints_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    printed = check_config(capsys)
    assert (printed["source"], printed["profile"]) == ("defaults", "")
    assert printed["gate"]["tcp_port"] == 8880
    assert printed["server"]["roles"] == ["gate", "chat", "auth", "worker"]


def test_flags(capsys: pytest.CaptureFixture[str]) -> None:
    printed = check_config(
        capsys,
        "--roles",
        "gate, worker",
        "--host",
        "0.0.0.0",
        "--gate-port",
        "9001",
        "--ws-port",
        "9002",
        "--http-port",
        "9003",
        "--data-dir",
        "/tmp/gs",
        "--log-level",
        "debug",
    )
    assert printed["server"]["roles"] == ["gate", "worker"]
    assert printed["server"]["host"] == "0.0.0.0"
    assert (printed["gate"]["tcp_port"], printed["gate"]["ws_port"], printed["http"]["port"]) == (9001, 9002, 9003)
    assert printed["server"]["data_dir"] == "/tmp/gs"
    assert printed["log"]["level"] == "debug"


def test_set_is_typed_by_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    printed = check_config(
        capsys,
        "--set",
        "server.node_id=123",
        "--set",
        "worker.timeout=2",
        "--set",
        "http.enabled=false",
        "--set",
        'modules.disabled=["a", "b"]',
        "--set",
        "modules.paths=.,..",  # check-config imports the modules in them: folders that exist
        "--set",
        "redis.prefix=a=b",
    )
    assert printed["server"]["node_id"] == "123"
    assert printed["worker"]["timeout"] == 2.0
    assert printed["http"]["enabled"] is False
    assert printed["modules"]["disabled"] == ["a", "b"]
    assert printed["modules"]["paths"] == [".", ".."]
    assert printed["redis"]["prefix"] == "a=b"


def test_flags_win_over_environment_and_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.toml").write_text("[gate]\ntcp_port = 7000\nws_port = 7001\n")
    monkeypatch.setenv("GAMESERVER_GATE__WS_PORT", "7101")
    printed = check_config(capsys, "--gate-port", "7200")
    assert printed["source"] == "config.toml"
    assert (printed["gate"]["tcp_port"], printed["gate"]["ws_port"]) == (7200, 7101)


def test_secrets_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    out = main(["check-config", "--set", "db.url=mysql+asyncmy://root:hunter2@127.0.0.1:3306/game"])
    assert out == 0
    text = capsys.readouterr().out
    assert json.loads(text)["db"]["url"] == "***"
    assert "hunter2" not in text


def test_bad_value_exits_2_naming_the_key(capsys: pytest.CaptureFixture[str]) -> None:
    err = config_error(capsys, "check-config", "--set", "gate.tcp_port=abc")
    assert err == "gameserver: config error: gate.tcp_port: expected an integer, got 'abc'\n"


def test_bad_flag_value_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert "gate.tcp_port: must be at most 65535" in config_error(capsys, "run", "--gate-port", "70000")


def test_unknown_key_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert "gate.nope: unknown key" in config_error(capsys, "check-config", "--set", "gate.nope=1")


def test_malformed_set_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--set gate: expected SECTION.KEY=VALUE" in config_error(capsys, "check-config", "--set", "gate")


def test_missing_profile_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert "profile 'nope' is not in defaults (profiles: none)" in config_error(capsys, "run", "--profile", "nope")


def test_missing_config_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert "config file missing.toml does not exist" in config_error(capsys, "run", "--config", "missing.toml")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out == f"gameserver {__version__}\n"


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2


def test_client_help_shows_only_what_the_client_uses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["client", "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    for flag in ("--config", "--profile", "--set", "--url", "--http-url", "--timeout"):
        assert flag in shown
    for flag in ("--roles", "--host", "--gate-port", "--ws-port", "--chat-port", "--http-port", "--data-dir"):
        assert flag not in shown  # a server's flags: they change nothing the client does


def test_check_config_checks_module_sections(capsys: pytest.CaptureFixture[str]) -> None:
    printed = check_config(capsys, "--set", "modules.mail.page_size=7")
    assert printed["modules"]["mail"] == {"page_size": 7, "send_rate": 10, "send_window": 60.0, "broadcast_batch": 500}
    assert main(["check-config", "--set", "modules.mail.page_sise=7"]) == 2
    assert "modules.mail.page_sise: unknown key" in capsys.readouterr().err
