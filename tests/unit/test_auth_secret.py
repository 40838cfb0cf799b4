"""The token secret (gameserver/features/identity/secret.py): configured, or generated once into the data dir."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gameserver.config import AuthConfig, load
from gameserver.errors import ConfigError
from gameserver.features.identity.secret import SECRET_FILE, load_secret


def test_a_configured_secret_is_used_verbatim(tmp_path: Path) -> None:
    assert load_secret(AuthConfig(secret="s" * 32), tmp_path) == b"s" * 32
    assert not (tmp_path / SECRET_FILE).exists()


@pytest.mark.parametrize("secret", ["short", "x" * 31, "é" * 15])
def test_a_short_configured_secret_is_refused_when_loading_the_config(secret: str) -> None:
    with pytest.raises(ConfigError, match=r"^auth\.secret: must be at least 32 bytes \(256 bits\)"):
        load(None, env={}, overrides={"auth.secret": secret})
    with pytest.raises(ConfigError, match=r"^auth\.secret: must be at least 32 bytes"):
        load(None, env={"GAMESERVER_AUTH__SECRET": secret})


def test_a_secret_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    first = load_secret(AuthConfig(), data_dir)
    path = data_dir / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32 and path.read_bytes().strip() == first
    assert load_secret(AuthConfig(), data_dir) == first
    assert [p.name for p in data_dir.iterdir()] == [SECRET_FILE]  # no temp file left behind


def test_the_generated_secret_can_be_configured_elsewhere(tmp_path: Path) -> None:
    generated = load_secret(AuthConfig(), tmp_path)
    assert load_secret(AuthConfig(secret=generated.decode()), tmp_path / "elsewhere") == generated


def test_a_short_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE).write_text("short\n")
    with pytest.raises(ConfigError, match=f"{SECRET_FILE}: a token secret must be at least 32 bytes"):
        load_secret(AuthConfig(), tmp_path)


def test_an_unreadable_data_dir_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot use the generated secret"):
        load_secret(AuthConfig(), blocker / "var")
