"""``gameserver new module NAME``: a new module package that answers a call, from the templates in ``templates/``.

The package has a handler that writes to the module's table (``tables.py``, created by its first migration in
``migrations/``), a settings section (``settings.py``: ``[modules.NAME]``) and a test against
:mod:`gameserver.testing` that passes as written. Nothing is overwritten: an existing folder or test stops it.
"""

from __future__ import annotations

import datetime
import keyword
import os
import re
import string
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import modules as builtin

NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")  # a package name, lowercase: the client's fn is NAME.function
TEMPLATES = "gameserver.commands.templates"
SUFFIX = ".tmpl"


class NewError(Exception):
    """The module cannot be made as asked; the message says why."""


@dataclass(frozen=True)
class Made:
    folder: Path  # the package
    test: Path
    builtin: bool  # under the shipped ``modules/`` package: loaded without ``modules.paths``


def check_name(name: str) -> None:
    if not NAME.fullmatch(name) or keyword.iskeyword(name):
        raise NewError(
            f"{name!r} is not a module name: lowercase letters, digits and _, starting with a letter (it becomes "
            f"the first part of every function's name, {name}.greet)"
        )


def module(name: str, into: Path, tests: Path) -> Made:
    """Write package ``name`` into the folder ``into`` and its test into ``tests``.

    Raises:
        NewError: a bad name, or the package or its test exists already.
    """
    check_name(name)
    folder = into / name
    test = tests / f"test_{name}.py"
    for path in (folder, test):
        if path.exists():
            raise NewError(f"{path} exists already; nothing was written")
    shipped = {Path(path).resolve() for path in builtin.__path__}
    is_builtin = into.resolve() in shipped
    if is_builtin:
        paths = ""
    else:
        # The test finds the folder from its own place, wherever pytest runs from.
        relative = Path(os.path.relpath(into.resolve(), tests.resolve())).as_posix()
        paths = f'"paths": [str(Path(__file__).parent / "{relative}")], '
    values = {
        "name": name,
        "date": datetime.date.today().isoformat(),
        "paths": paths,
        "test": test.as_posix(),
    }
    module_files = _render(resources.files(TEMPLATES) / "module", values)
    renames = {"migrations/first.py": f"migrations/{name}_0001_greetings.py"}
    for relative_path, text in module_files.items():
        target = folder / renames.get(relative_path, relative_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    tests.mkdir(parents=True, exist_ok=True)
    test_text = _render(resources.files(TEMPLATES) / "test", values)["test_module.py"]
    test.write_text(test_text, encoding="utf-8")
    return Made(folder, test, is_builtin)


def _render(folder: resources.abc.Traversable, values: dict[str, str], prefix: str = "") -> dict[str, str]:
    """The templates under ``folder`` by their relative path less ``.tmpl``, with ``${name}`` and co filled in."""
    rendered: dict[str, str] = {}
    for item in folder.iterdir():
        if item.is_dir():
            rendered.update(_render(item, values, f"{prefix}{item.name}/"))
        elif item.name.endswith(SUFFIX):
            text = string.Template(item.read_text(encoding="utf-8")).substitute(values)
            rendered[prefix + item.name.removesuffix(SUFFIX)] = text
    return rendered


def default_folder() -> Path:
    """``modules`` in a checkout of gameserver (the shipped package, loaded without settings), else ``game_modules``
    (a folder named ``modules`` outside the checkout would hide the shipped package of that name)."""
    shipped = {Path(path).resolve() for path in builtin.__path__}
    return Path("modules") if Path("modules").resolve() in shipped else Path("game_modules")


def main(kind: str, name: str, into: str | None, tests: str) -> int:
    """``gameserver new module NAME [--into DIR] [--tests DIR]``: write it and say what to do next."""
    assert kind == "module"
    folder = Path(into) if into else default_folder()
    try:
        made = module(name, folder, Path(tests))
    except NewError as exc:
        print(f"gameserver new module: {exc}", file=sys.stderr)
        return 2
    run = "gameserver run --reload" if made.builtin else f"gameserver run --reload --set modules.paths={folder}"
    print(f"wrote {made.folder}/ (handlers.py, tables.py, settings.py, migrations/) and {made.test}")
    print("next:")
    print(f"  .venv/bin/pytest {made.test}        # its test passes as written")
    print(f"  .venv/bin/{run}")
    print(f'  then call {name}.greet with {{"name": "ada"}} in the console or `.venv/bin/gameserver client`')
    return 0
