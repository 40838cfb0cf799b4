"""The function table: module handlers by ``package.function`` name, checked once at start-up.

A module is a package under ``modules/`` (or a folder named in ``modules.paths``) whose ``__init__.py``
has ``HANDLERS = {"name": fn_or_handler(...)}``. Parameters before ``*`` are the client's ``args``;
keyword-only parameters are injected resources (``db``, ``redis``, ``config``, ``uid``, ...); ``**_`` takes
the rest. A handler is passed only the resources it names, unless it takes the whole bag as ``**kwargs`` (any
name but ``_``, which says the rest goes unused: passing a dozen unused keyword arguments costs more than a
small handler itself). Start-up fails (a :class:`~gameserver.errors.ModuleError`) on a package that does not import,
a sync function, a duplicate name, a client parameter that shadows a
resource, or a keyword-only parameter nothing can fill.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import inspect
import logging
import pkgutil
import sys
import types
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gameserver.dispatch import crashes
from gameserver.errors import BadRequest, ConfigError, ModuleError

HandlerFn = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Handler:
    """A handler with per-function settings, like arq's ``func()``.

    Args:
        fn: the async function.
        login: whether a caller must be logged in (PROTOCOL.md: every function that acts for a player).
        timeout: the deadline in seconds; None takes ``worker.timeout``.
        any_args: accept any client args unchecked; the handler reads them from the injected ``args``.
        idempotent: a request with an idempotency key runs once per key and caller, its database writes in one
            transaction with the stored reply (:mod:`gameserver.dispatch.idempotency`); for state-changing functions.
    """

    fn: HandlerFn
    login: bool = True
    timeout: float | None = None
    any_args: bool = False
    idempotent: bool = False


def handler(
    fn: HandlerFn,
    *,
    login: bool = True,
    timeout: float | None = None,
    any_args: bool = False,
    idempotent: bool = False,
) -> Handler:
    return Handler(fn, login=login, timeout=timeout, any_args=any_args, idempotent=idempotent)


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    required: bool
    types: tuple[type, ...] | None  # None: any value
    type_name: str
    default: Any = None


@dataclass(slots=True)
class Entry:
    """A registered function, compiled for the hot path."""

    name: str
    fn: HandlerFn
    login: bool
    timeout: float
    params: dict[str, Param]
    names: frozenset[str]
    required: frozenset[str]
    checked: tuple[Param, ...]
    inject: tuple[str, ...] | None  # None: the handler takes **kwargs (not **_) and gets every resource
    log: logging.Logger
    doc: str
    any_args: bool = False
    idempotent: bool = False
    stats: Any = field(default=None)  # metrics.FunctionStats, set by the dispatcher

    def check_args(self, args: dict[str, Any]) -> None:
        """Raise :class:`BadRequest` unless ``args`` fit the handler's client parameters."""
        if self.any_args:
            return
        keys = args.keys()
        if not keys <= self.names:
            unknown = ", ".join(sorted(str(k) for k in keys - self.names))
            raise BadRequest(f"unknown argument {unknown} for {self.name}")
        if not self.required <= keys:
            missing = ", ".join(sorted(self.required - keys))
            raise BadRequest(f"missing argument {missing} for {self.name}")
        for param in self.checked:
            value = args.get(param.name, param)
            if value is param:
                continue
            assert param.types is not None
            if not isinstance(value, param.types) or (type(value) is bool and bool not in param.types):
                raise BadRequest(f"{param.name} must be {param.type_name}")

    def describe(self) -> dict[str, Any]:
        """What a client needs to call it (for the console and docs)."""
        return {
            "fn": self.name,
            "login": self.login,
            "timeout": self.timeout,
            "idempotent": self.idempotent,
            "doc": self.doc,
            "args": [
                {"name": p.name, "type": p.type_name, "required": p.required}
                | ({} if p.required else {"default": p.default})
                for p in self.params.values()
            ],
        }


_SIMPLE_TYPES: dict[Any, tuple[type, ...]] = {
    str: (str,),
    int: (int,),
    float: (int, float),
    bool: (bool,),
    bytes: (bytes,),
    list: (list,),
    dict: (dict,),
}


def _param_types(annotation: Any) -> tuple[tuple[type, ...] | None, str]:
    if annotation is inspect.Parameter.empty or annotation is Any:
        return None, "any"
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        allowed: list[type] = []
        names = []
        for member in typing.get_args(annotation):
            if member is type(None):
                allowed.append(type(None))
                names.append("null")
                continue
            member_types, name = _param_types(member)
            if member_types is None:
                return None, "any"
            allowed.extend(member_types)
            names.append(name)
        return tuple(allowed), " or ".join(names)
    base = origin or annotation
    if base in _SIMPLE_TYPES:
        name = {
            str: "a string",
            int: "an integer",
            float: "a number",
            bool: "true or false",
            bytes: "bytes",
            list: "a list",
            dict: "a map",
        }[base]
        return _SIMPLE_TYPES[base], name
    return None, getattr(annotation, "__name__", str(annotation))


def compile_entry(
    name: str, spec: Handler, *, injectable: Iterable[str], default_timeout: float, kind: str = "handler"
) -> Entry:
    """Read a handler's signature once and check it against what can be injected.

    Background jobs (:mod:`gameserver.features.jobs`) are compiled here too, with ``kind="job"`` naming them in the
    errors:
    their arguments are the parameters before ``*``, checked the same way when they are enqueued.

    Raises:
        ModuleError: the function is not async, or a parameter cannot be filled.
    """
    fn = spec.fn
    who = "clients" if kind == "handler" else "callers"
    if spec.any_args and any(
        p.kind in (p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY) for p in inspect.signature(fn).parameters.values()
    ):
        raise ModuleError(f"{kind} {name}: any_args handlers take no client parameters; read `args`")
    if not inspect.iscoroutinefunction(fn):
        code = getattr(fn, "__code__", None)
        where = f" ({crashes.shown(code.co_filename)}:{code.co_firstlineno})" if code is not None else ""
        raise ModuleError(f"{kind} {name}: {getattr(fn, '__qualname__', fn)!r} must be an async function{where}")
    injectable = frozenset(injectable)
    signature = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:
        raise ModuleError(f"{kind} {name}: cannot read its annotations: {exc}") from None
    params: dict[str, Param] = {}
    inject: list[str] = []
    takes_kwargs = False
    for p in signature.parameters.values():
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY):
            if p.kind is p.POSITIONAL_ONLY:
                raise ModuleError(f"{kind} {name}: parameter {p.name} is positional-only; {who} pass names")
            if p.name in injectable:
                raise ModuleError(f"{kind} {name}: parameter {p.name} is a resource name; put it after `*`")
            allowed, type_name = _param_types(hints.get(p.name, p.annotation))
            required = p.default is p.empty
            params[p.name] = Param(p.name, required, allowed, type_name, None if required else p.default)
        elif p.kind is p.KEYWORD_ONLY:
            if p.name not in injectable and p.default is p.empty:
                known = ", ".join(sorted(injectable))
                raise ModuleError(f"{kind} {name}: nothing provides keyword-only {p.name} (resources: {known})")
            if p.name in injectable:
                inject.append(p.name)
        elif p.kind is p.VAR_KEYWORD:
            takes_kwargs = p.name != "_"  # `**_` ignores the rest: don't build it
        elif p.kind is p.VAR_POSITIONAL:
            raise ModuleError(f"{kind} {name}: *{p.name} cannot be filled; {who} pass named args")
    doc = inspect.getdoc(fn) or ""
    module = getattr(fn, "__module__", "modules")
    return Entry(
        name=name,
        fn=fn,
        login=spec.login,
        timeout=spec.timeout if spec.timeout is not None else default_timeout,
        params=params,
        names=frozenset(params),
        required=frozenset(n for n, p in params.items() if p.required),
        checked=tuple(p for p in params.values() if p.types is not None),
        inject=None if takes_kwargs else tuple(inject),
        log=logging.getLogger(module),
        doc=doc.splitlines()[0] if doc else "",
        any_args=spec.any_args,
        idempotent=spec.idempotent,
    )


def injected(entry: Entry, resources: Mapping[str, Any], per_call: Iterable[str] = ()) -> dict[str, Any]:
    """The keyword arguments that ``entry`` gets on every call: the shared resources (and its logger) it names, or
    all of them for a ``**kwargs`` function. The names in ``per_call`` (a request's ``uid``, a job's ``job_id``)
    are left out for the caller to add each time. Built once per entry, then copied per call."""
    shared = {**resources, "log": entry.log}
    if entry.inject is None:
        return shared
    per_call = frozenset(per_call)
    return {name: shared[name] for name in entry.inject if name not in per_call}


def discover(paths: Iterable[str] = (), disabled: Iterable[str] = ()) -> dict[str, types.ModuleType]:
    """Import every module package: those under ``modules/`` and those in the folders ``paths``.

    Raises:
        ModuleError: a package does not import, two packages have one name, or one has no ``HANDLERS``.
        ConfigError: a folder in ``paths`` is missing.
    """
    disabled = set(disabled)
    found: dict[str, types.ModuleType] = {}
    import modules as builtin

    for info in pkgutil.iter_modules(builtin.__path__):
        if info.ispkg and info.name not in disabled:
            importer = functools.partial(importlib.import_module, f"modules.{info.name}")
            # A folder finder has a path; the single executable's (PyInstaller's) has none: no sources to pin there.
            finder_path = getattr(info.module_finder, "path", None)
            sources = Path(finder_path) / info.name if isinstance(finder_path, str) else None
            found[info.name] = load(info.name, importer, sources)
    for folder in paths:
        root = Path(folder)
        if not root.is_dir():
            raise ConfigError(f"modules.paths: {folder} is not a folder")
        for info in pkgutil.iter_modules([str(root)]):
            if not info.ispkg or info.name in disabled:
                continue
            if info.name in found:
                raise ModuleError(f"modules.paths: module {info.name} in {folder} is already loaded")
            importer = functools.partial(_import_path, info.name, root / info.name)
            found[info.name] = load(info.name, importer, root / info.name)
    for name, module in found.items():
        if not isinstance(getattr(module, "HANDLERS", None), Mapping):
            raise ModuleError(f"module {name}: its __init__.py needs HANDLERS = {{'name': function}}")
    settings_of(found)
    return found


def load(name: str, importer: Callable[[], types.ModuleType], folder: Path | None = None) -> types.ModuleType:
    """Import module package ``name`` (in ``folder``) with ``importer``, at start-up as on a reload.

    Tracebacks of its code show the sources this import read, not what the files hold when they are formatted
    (:func:`gameserver.dispatch.crashes.pin_sources`).

    Raises:
        ModuleError: it does not import: ``module <name>: <Type>: <message> (at <file>:<line>)``, the same line
            wherever it happens (:func:`gameserver.dispatch.crashes.summary`); the import's exception is its cause.
    """
    sources = crashes.read_sources(folder) if folder is not None else {}
    try:
        return importer()
    except ModuleError:
        raise
    except Exception as exc:
        raise ModuleError(f"module {name}: {crashes.summary(exc)}") from exc
    finally:
        crashes.pin_sources(sources)


def settings_of(packages: Mapping[str, types.ModuleType]) -> dict[str, type[Any] | None]:
    """Each module's ``SETTINGS`` (the dataclass of its ``[modules.<name>]`` section), None for a module without.

    Raises:
        ModuleError: ``SETTINGS`` is not a dataclass.
    """
    found: dict[str, type[Any] | None] = {}
    for name, module in packages.items():
        cls = getattr(module, "SETTINGS", None)
        if cls is not None and not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise ModuleError(f"module {name}: SETTINGS must be a dataclass of setting() fields, got {cls!r}")
        found[name] = cls
    return found


def _import_path(name: str, folder: Path) -> types.ModuleType:
    qualified = f"gameserver_modules.{name}"
    spec = importlib.util.spec_from_file_location(qualified, folder / "__init__.py")
    if spec is None or spec.loader is None:
        raise ModuleError(f"modules.paths: cannot import {folder}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    spec.loader.exec_module(module)
    return module


def build_table(
    packages: Mapping[str, types.ModuleType], *, injectable: Iterable[str], default_timeout: float
) -> dict[str, Entry]:
    injectable = frozenset(injectable)
    table: dict[str, Entry] = {}
    for package, module in packages.items():
        for key, value in module.HANDLERS.items():
            name = f"{package}.{key}"
            if name in table:
                raise ModuleError(f"handler {name} is registered twice")
            spec = value if isinstance(value, Handler) else Handler(value)
            table[name] = compile_entry(name, spec, injectable=injectable, default_timeout=default_timeout)
    return table
