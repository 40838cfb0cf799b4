"""gameserver new module: names it refuses, and what it writes where (the black-box test runs what it writes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gameserver.commands.new import NewError, check_name, module


@pytest.mark.parametrize("name", ["Quests", "1quests", "class", "quest-log", "", "q" * 41])
def test_a_name_that_is_no_lowercase_package_name_is_refused(name: str) -> None:
    with pytest.raises(NewError, match="is not a module name"):
        check_name(name)


def test_it_writes_the_package_and_its_test_and_overwrites_nothing(tmp_path: Path) -> None:
    made = module("quests", tmp_path / "mods", tmp_path / "tests" / "modules")
    assert not made.builtin  # outside the shipped modules/: its test loads it through modules.paths
    test = made.test.read_text()
    assert 'MODULES = {"paths": [str(Path(__file__).parent / "../../mods")], "quests": {"greeting": "ahoy"}}' in test
    migration = (made.folder / "migrations" / "quests_0001_greetings.py").read_text()
    assert 'revision = "quests_0001"' in migration and 'branch_labels = ("quests",)' in migration
    assert "${" not in "".join(p.read_text() for p in made.folder.rglob("*.py"))
    (made.folder / "handlers.py").write_text("# mine\n")
    with pytest.raises(NewError, match="exists already; nothing was written"):
        module("quests", tmp_path / "mods", tmp_path / "tests" / "modules")
    assert (made.folder / "handlers.py").read_text() == "# mine\n"
