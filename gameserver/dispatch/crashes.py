"""What a developer is told about an exception raised by module code: where it happened, in one line.

The same words wherever module code fails: a module that cannot be imported at start-up, a reload that fails
(:mod:`gameserver.features.reload`), and in development the ``internal`` reply to a handler's crash
(docs/PROTOCOL.md, "Internal errors").
"""

from __future__ import annotations

import linecache
import os
import sysconfig
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gameserver

_FRAMEWORK = os.path.dirname(gameserver.__file__) + os.sep
_LIBRARIES = tuple(
    {os.path.join(path, "") for path in (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"])}
)


@dataclass(frozen=True, slots=True)
class Location:
    file: str  # relative to the working directory when it is below it
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def shown(path: str) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return path if relative.startswith("..") else relative


def location(exc: BaseException) -> Location | None:
    """The innermost frame of ``exc``'s traceback in the game's code (not in gameserver/, the standard library or
    an installed package); failing that the innermost frame; None without a traceback. A syntax error is where
    the parser stopped."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return Location(shown(exc.filename), exc.lineno or 0)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    if not frames:
        return None
    own = [f for f in frames if not f.filename.startswith(_FRAMEWORK) and not f.filename.startswith(_LIBRARIES)]
    frame = (own or frames)[-1]
    return Location(shown(frame.filename), frame.lineno or 0)


def summary(exc: BaseException) -> str:
    """One line: ``Type: message (at file:line)``, the location in the game's code when there is one."""
    if isinstance(exc, SyntaxError):
        where = location(exc)
        return f"{type(exc).__name__}: {exc.msg} (at {where})" if where else f"{type(exc).__name__}: {exc.msg}"
    text = "".join(traceback.format_exception_only(exc)).strip().replace("\n", " ")
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    own = [f for f in frames if not f.filename.startswith(_FRAMEWORK) and not f.filename.startswith(_LIBRARIES)]
    if own:
        text += f" (at {shown(own[-1].filename)}:{own[-1].lineno})"
    return text


def message(exc: BaseException) -> str:
    """The exception's own message, without its type."""
    if isinstance(exc, SyntaxError):
        return exc.msg
    return str(exc) or (repr(exc.args[0]) if exc.args else "")


# Tracebacks read their source lines from disk when they are formatted: after an edit, the lines of the new file
# would be shown under the frames of the code that ran, the old version (still running after a failed reload).
# A module's sources are therefore read when it is imported, and kept in linecache as loaded code's are (an entry
# without a modification time is never checked against the file).
Lines = dict[str, tuple[Any, ...]]


def read_sources(folder: Path) -> dict[str, str]:
    """The ``.py`` files below ``folder`` and their text, read just before an import runs them."""
    sources: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        if "__pycache__" not in path.parts:
            try:
                sources[str(path)] = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
    return sources


def pin_sources(sources: dict[str, str]) -> None:
    """Make tracebacks show ``sources`` for their files, whatever the files hold by then."""
    for path, text in sources.items():
        linecache.cache[path] = (len(text), None, text.splitlines(keepends=True), path)


def pinned(paths: Iterable[str]) -> Lines:
    """What linecache holds now for ``paths``, to put back with :func:`unpin`."""
    return {path: linecache.cache[path] for path in paths if path in linecache.cache}


def unpin(paths: Iterable[str], saved: Lines) -> None:
    """Put back what :func:`pinned` saved for ``paths`` (and forget the others)."""
    for path in paths:
        if path in saved:
            linecache.cache[path] = saved[path]
        else:
            linecache.cache.pop(path, None)
