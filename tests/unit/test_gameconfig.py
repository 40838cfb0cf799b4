"""The game data config: reading files and folders, ETags, and what a change or a broken edit does."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gameserver.errors import ConfigError
from gameserver.features.configserver import GameData, etag_matches, read_game_config


def test_a_folder_becomes_one_object_keyed_by_file_and_subfolder(tmp_path: Path) -> None:
    (tmp_path / "items.toml").write_text('[coin]\nname = "Coin"\n')
    (tmp_path / "levels.json").write_text('{"max": 5}')
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "spring.toml").write_text("bonus = 2\n")
    (tmp_path / "notes.txt").write_text("not config")
    (tmp_path / ".hidden.toml").write_text("x = 1\n")
    assert read_game_config(tmp_path) == {
        "items": {"coin": {"name": "Coin"}},
        "levels": {"max": 5},
        "events": {"spring": {"bonus": 2}},
    }


def test_a_single_file_is_the_whole_config(tmp_path: Path) -> None:
    path = tmp_path / "game.json"
    path.write_text('{"a": [1, 2]}')
    assert read_game_config(path) == {"a": [1, 2]}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.toml", "x = ", "bad.toml"),
        ("bad.json", "{", "bad.json"),
        ("list.json", "[1]", "expected a JSON object"),
        ("latin.toml", b"x = '\xff'", "latin.toml"),
    ],
)
def test_a_file_that_does_not_parse_is_named(tmp_path: Path, name: str, text: str | bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError, match=message):
        read_game_config(tmp_path)


def test_two_files_for_one_key_and_a_missing_path_are_refused(tmp_path: Path) -> None:
    (tmp_path / "items.toml").write_text("a = 1\n")
    (tmp_path / "items.json").write_text("{}")
    with pytest.raises(ConfigError, match="both define 'items'"):
        read_game_config(tmp_path)
    with pytest.raises(ConfigError, match="neither a file nor a folder"):
        read_game_config(tmp_path / "missing")


def test_if_none_match_uses_the_weak_comparison() -> None:
    assert etag_matches('"abc"', '"abc"')
    assert etag_matches('W/"abc"', '"abc"')
    assert etag_matches('"x", "abc"', '"abc"')
    assert etag_matches("*", '"abc"')
    assert not etag_matches('"abd"', '"abc"')
    assert not etag_matches("", '"abc"')


def test_no_path_serves_an_empty_object() -> None:
    game = GameData("")
    game.load()
    assert (game.data, game.body, game.check()) == ({}, b"{}", False)


def test_check_serves_a_changed_file_and_keeps_the_last_good_version(tmp_path: Path) -> None:
    path = tmp_path / "world.toml"
    path.write_text('name = "one"\n')
    game = GameData(str(path))
    game.load()
    first = game.etag
    assert game.data == {"name": "one"} and json.loads(game.body) == {"name": "one"}
    assert game.check() is False  # unchanged

    path.write_text('name = "two, longer"\n')
    assert game.check() is True
    assert game.data == {"name": "two, longer"} and game.etag != first and game.version == 2

    path.write_text('name = "unterminated\n')
    assert game.check() is False
    assert "world.toml" in game.error
    assert game.data == {"name": "two, longer"}

    path.write_text('name = "two, longer"\n')  # back to the served content: nothing new to serve
    assert game.check() is False
    assert game.error == "" and game.version == 2


def test_an_editor_replacing_the_file_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "world.toml"
    path.write_text("a = 1\n")
    game = GameData(str(path))
    game.load()
    stat = path.stat()
    replacement = tmp_path / "world.toml.new"
    replacement.write_text("a = 2\n")  # same size
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same mtime
    replacement.replace(path)  # save-by-rename: a new inode
    assert game.check() is True
    assert game.data == {"a": 2}
