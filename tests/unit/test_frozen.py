"""What the single executable finds beside itself (gameserver.frozen), as a checkout sees it when it pretends to be
frozen: ``sys.frozen`` set and ``sys.executable`` in a folder of the test's. The executable itself runs in
tests/blackbox/test_binary.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import modules
from gameserver import frozen
from gameserver.config import load
from gameserver.dispatch.registry import discover

pytestmark = pytest.mark.usefixtures("cli_env")


@pytest.fixture
def beside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder of a pretend executable; the working directory is another, empty one."""
    folder = tmp_path / "opt"
    folder.mkdir()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(folder / "gameserver"))
    monkeypatch.setattr(modules, "__path__", list(modules.__path__))  # restored: add_modules_folder extends it
    return folder


def test_outside_the_executable_nothing_changes(tmp_path: Path) -> None:
    assert (frozen.home(), frozen.config_file(), frozen.defaults()) == (None, None, {})
    before = list(modules.__path__)
    frozen.add_modules_folder()
    assert list(modules.__path__) == before
    config = load(None, env={})
    assert (config.server.data_dir, config.game.config, config.source) == ("var", "game", "defaults")


def test_data_and_game_data_default_to_beside_the_executable(beside: Path) -> None:
    config = load(None, env={})
    assert config.source == "defaults"
    assert (config.server.data_dir, config.game.config) == (str(beside / "var"), str(beside / "game"))
    assert load(None, env={"GAMESERVER_SERVER__DATA_DIR": "data"}).server.data_dir == "data"  # set: as given


def test_config_toml_beside_the_executable_unless_one_is_in_the_working_directory(beside: Path) -> None:
    (beside / "config.toml").write_text('[server]\nnode_id = "beside"\n')
    config = load(None, env={})
    assert (config.source, config.server.node_id) == (str(beside / "config.toml"), "beside")
    Path("config.toml").write_text('[server]\nnode_id = "here"\ndata_dir = "mine"\n')
    config = load(None, env={})
    assert (config.source, config.server.node_id, config.server.data_dir) == ("config.toml", "here", "mine")


def test_modules_beside_the_executable_join_the_shipped_ones(beside: Path) -> None:
    package = beside / "modules" / "zz_beside"
    package.mkdir(parents=True)
    (package / "helpers.py").write_text("ANSWER = 42\n")
    (package / "__init__.py").write_text(
        "from modules.zz_beside.helpers import ANSWER\n\nasync def answer(**_):\n    return ANSWER\n\n"
        'HANDLERS = {"answer": answer}\n'
    )
    frozen.add_modules_folder()
    frozen.add_modules_folder()  # once only
    assert modules.__path__[-1] == str(beside / "modules") and modules.__path__.count(str(beside / "modules")) == 1
    try:
        found = discover()
        assert found["zz_beside"].__name__ == "modules.zz_beside"
        assert "sys" in found  # the shipped ones still there
    finally:
        for name in [name for name in sys.modules if name.startswith("modules.zz_beside")]:
            del sys.modules[name]
