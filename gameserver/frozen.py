"""The single executable (``scripts/build-binary``, PyInstaller one-file): what "beside the executable" means.

A checkout runs from its own folder: ``config.toml``, ``modules/``, ``game/`` and ``var/`` are found relative to
the working directory. The executable carries ``gameserver``, the shipped ``modules`` and ``enums`` packages and
the console's files inside; a studio puts its own files in the executable's folder instead, so it ships new game
code without building again:

| beside the executable | used when | as |
|---|---|---|
| ``config.toml`` | no ``--config`` and no ``./config.toml`` | the config file |
| ``modules/<package>/`` | always | more module packages, importable as ``modules.<package>`` as in a checkout |
| ``game/`` | ``game.config`` is set nowhere | the game data served at ``GET /config`` |
| ``var/`` | ``server.data_dir`` is set nowhere | SQLite, generated secrets, mail |

Paths that a config file, a ``GAMESERVER_*`` variable or a flag sets stay relative to the working directory, as
they are everywhere else. Outside the executable every function here does nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def home() -> Path | None:
    """The executable's folder when running as the single executable, else None."""
    if not getattr(sys, "frozen", False):
        return None
    return Path(sys.executable).resolve().parent


def config_file() -> Path | None:
    """``config.toml`` beside the executable, if there is one."""
    folder = home()
    if folder is None or not (folder / "config.toml").is_file():
        return None
    return folder / "config.toml"


def defaults() -> dict[str, Any]:
    """The lowest config layer of the executable: data and game data beside it."""
    folder = home()
    if folder is None:
        return {}
    return {"server": {"data_dir": str(folder / "var")}, "game": {"config": str(folder / "game")}}


def add_modules_folder() -> None:
    """Make ``modules/`` beside the executable part of the ``modules`` package: its packages are discovered (and
    hot-reloaded) like the shipped ones and import each other as ``modules.<name>``. The shipped package comes
    first, so a folder with a shipped module's name is not loaded (``modules.disabled`` keeps the shipped one out
    but does not let a second one of that name in)."""
    folder = home()
    if folder is None or not (folder / "modules").is_dir():
        return
    import modules

    extra = str(folder / "modules")
    if extra not in modules.__path__:
        modules.__path__.append(extra)
