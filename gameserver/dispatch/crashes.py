"""What a developer is told about an exception raised by module code: where it happened, in one line.

The same words wherever module code fails: a module that cannot be imported at start-up, a reload that fails
(:mod:`gameserver.features.reload`), and in development the ``internal`` reply to a handler's crash
(docs/PROTOCOL.md, "Internal errors").
"""

from __future__ import annotations

import os
import sysconfig
import traceback
from dataclasses import dataclass

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
