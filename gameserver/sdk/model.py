"""The API description that client SDK generators render: one plain, JSON-able, sorted dict.

:func:`describe` reads the function table (every module's ``HANDLERS``, compiled by the registry exactly as the
server compiles them, without starting a server), the shared enums (``enums.__all__``) and the error codes
(``enums/errors.py``)::

    {"version": 1,
     "modules": [{"name": "family", "functions": [
         {"fn": "family.create", "name": "create", "login": True, "doc": "...", "timeout": 10.0,
          "params": [{"name": "name", "type": Type, "required": True},
                     {"name": "limit", "type": Type, "required": False, "default": 20}],
          "returns": Type}]}],
     "enums": [{"name": "ItemKind", "kind": "int", "doc": "...", "members": [["COIN", 1], ...]}],
     "errors": [{"name": "BAD_REQUEST", "code": "bad_request", "module": False}, ...]}

A ``Type`` is ``{"kind": "any" | "null" | "bool" | "int" | "float" | "str" | "bytes"}``,
``{"kind": "list", "items": Type}``, ``{"kind": "dict", "values": Type}``, ``{"kind": "union", "of": [Type]}``,
``{"kind": "enum", "name": ...}`` (a shared enum) or ``{"kind": "object", "name": ..., "fields": [...]}`` (a
``TypedDict``). Modules and functions are sorted by name, parameters keep their signature order, enums keep
``enums.__all__``'s order, so the same server gives the same description, byte for byte, every time.
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gameserver.dispatch.registry import Entry, build_table, discover

VERSION = 1
PER_REQUEST = ("uid", "session", "log", "args", "claims")  # what the dispatcher injects per request

Type = dict[str, Any]
ANY: Type = {"kind": "any"}
_SCALARS: dict[Any, str] = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    bytes: "bytes",
    type(None): "null",
    None: "null",
}


def describe(
    modules: Mapping[str, types.ModuleType] | None = None,
    *,
    paths: Iterable[str] = (),
    disabled: Iterable[str] = (),
    default_timeout: float = 10.0,
) -> dict[str, Any]:
    """The API of ``modules`` (by default every module :func:`~gameserver.dispatch.registry.discover` finds in
    ``modules/`` and ``paths``, less ``disabled``), the shared enums and the error codes.

    Raises:
        ConfigError: a module the server would refuse to start with.
    """
    if modules is None:
        modules = discover(paths, disabled)
    enum_classes = shared_enums()
    table = build_table(modules, injectable=_injectable(modules), default_timeout=default_timeout)
    types_ = _Types(enum_classes)
    grouped: dict[str, list[dict[str, Any]]] = {}
    for name in sorted(table):
        package, _, function = name.partition(".")
        grouped.setdefault(package, []).append(_function(table[name], function, types_))
    return {
        "version": VERSION,
        "modules": [{"name": package, "functions": grouped[package]} for package in sorted(grouped)],
        "enums": [_enum(cls) for cls in enum_classes],
        "errors": error_codes(),
    }


def shared_enums() -> list[type[enum.Enum]]:
    """The enums listed in ``enums.__all__``, in that order."""
    import enums

    found = [getattr(enums, name) for name in enums.__all__]
    return [cls for cls in found if isinstance(cls, type) and issubclass(cls, enum.Enum)]


def error_codes() -> list[dict[str, Any]]:
    """Every code of ``ErrorCode`` (``"module": False``), then of ``ModuleErrorCode`` and ``AuthErrorCode``."""
    from enums import errors

    found: list[dict[str, Any]] = []
    for cls, module in ((errors.ErrorCode, False), (errors.ModuleErrorCode, True), (errors.AuthErrorCode, True)):
        found += [{"name": member.name, "code": member.value, "module": module} for member in cls]
    return found


def type_of(annotation: Any, enum_classes: Sequence[type[enum.Enum]] = ()) -> Type:
    """The ``Type`` of a Python annotation (already resolved: no strings)."""
    return _Types(enum_classes).of(annotation)


def _injectable(modules: Mapping[str, types.ModuleType]) -> set[str]:
    """Every keyword-only name the handlers ask for: the description trusts what the running server checks
    against its real resources, so that it needs none of them."""
    names = set(PER_REQUEST)
    for module in modules.values():
        for value in module.HANDLERS.values():
            fn = getattr(value, "fn", value)
            names |= {p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY}
    return names


def _function(entry: Entry, name: str, types_: _Types) -> dict[str, Any]:
    hints = typing.get_type_hints(entry.fn)
    signature = inspect.signature(entry.fn)
    params: list[dict[str, Any]] = []
    for param in entry.params.values():
        annotation = hints.get(param.name, signature.parameters[param.name].annotation)
        described: dict[str, Any] = {"name": param.name, "type": types_.of(annotation), "required": param.required}
        if not param.required:
            described["default"] = _jsonable(param.default)
        params.append(described)
    returns = hints.get("return", inspect.Parameter.empty)
    return {
        "fn": entry.name,
        "name": name,
        "login": entry.login,
        "doc": entry.doc,
        "timeout": float(entry.timeout),
        "params": params,
        "returns": types_.of(returns),
    }


def _enum(cls: type[enum.Enum]) -> dict[str, Any]:
    members: list[list[Any]] = []
    for member in cls:
        value = member.value
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise TypeError(f"{cls.__name__}.{member.name}: only int and str enum values can be described")
        members.append([member.name, value])
    kind = "int" if all(isinstance(value, int) for _, value in members) else "str"
    doc = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split()).replace("``", "`")
    return {"name": cls.__name__, "kind": kind, "doc": doc, "members": members}


def _jsonable(value: Any) -> Any:
    """A default value as JSON can carry it: enum members by value, tuples as lists."""
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in sorted(value.items(), key=lambda kv: str(kv[0]))}
    raise TypeError(f"default {value!r} cannot be described for clients")


class _Types:
    def __init__(self, enum_classes: Sequence[type[enum.Enum]]) -> None:
        self.shared = frozenset(enum_classes)
        self.seen: list[Any] = []  # TypedDicts being described: a recursive one refers to itself as any

    def of(self, annotation: Any) -> Type:
        if annotation is inspect.Parameter.empty or annotation is Any or annotation is object:
            return dict(ANY)
        if annotation in _SCALARS:
            return {"kind": _SCALARS[annotation]}
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin in (types.UnionType, typing.Union):
            return self._union(args)
        if origin is typing.Literal:
            return self.of(_literal_base(args))
        base = origin or annotation
        if isinstance(base, type) and issubclass(base, enum.Enum):
            if base in self.shared:
                return {"kind": "enum", "name": base.__name__}
            return {"kind": "int" if issubclass(base, int) else "str" if issubclass(base, str) else "any"}
        if typing.is_typeddict(base):
            return self._object(base)
        if base is tuple:  # tuple[X, ...] or tuple[X, Y]: msgpack and JSON carry both as a list
            items = [arg for arg in args if arg is not Ellipsis]
            return {"kind": "list", "items": self._union(items) if items else dict(ANY)}
        if base in (list, set, frozenset) or base in _SEQUENCES:
            return {"kind": "list", "items": self.of(args[0]) if args else dict(ANY)}
        if base is dict or base in _MAPPINGS:
            return {"kind": "dict", "values": self.of(args[1]) if len(args) == 2 else dict(ANY)}
        if isinstance(annotation, typing.NewType):
            return self.of(annotation.__supertype__)
        for scalar in (bool, int, float, str, bytes):
            if isinstance(base, type) and issubclass(base, scalar):
                return {"kind": _SCALARS[scalar]}
        return dict(ANY)

    def _union(self, annotations: Iterable[Any]) -> Type:
        members: list[Type] = []
        for annotation in annotations:
            member = self.of(annotation)
            if member["kind"] == "any":
                return dict(ANY)
            for flat in member["of"] if member["kind"] == "union" else [member]:
                if flat not in members:
                    members.append(flat)
        return members[0] if len(members) == 1 else {"kind": "union", "of": members}

    def _object(self, cls: Any) -> Type:
        if cls in self.seen:
            return dict(ANY)
        self.seen.append(cls)
        try:
            fields = [
                self._field(cls, name, hint) for name, hint in typing.get_type_hints(cls, include_extras=True).items()
            ]
        finally:
            self.seen.pop()
        return {"kind": "object", "name": cls.__name__, "fields": fields}

    def _field(self, cls: Any, name: str, hint: Any) -> dict[str, Any]:
        # Read Required/NotRequired from the hint: under `from __future__ import annotations` Python 3.11's
        # __required_keys__ cannot see them inside the strings.
        required = name in cls.__required_keys__
        while typing.get_origin(hint) in (typing.Required, typing.NotRequired, typing.Annotated):
            if typing.get_origin(hint) is not typing.Annotated:
                required = typing.get_origin(hint) is typing.Required
            hint = typing.get_args(hint)[0]
        return {"name": name, "type": self.of(hint), "required": required}


_SEQUENCES = (Sequence, Iterable)  # typing.List, typing.Sequence, ... have these (or list) as their origin
_MAPPINGS = (Mapping,)


def _literal_base(values: tuple[Any, ...]) -> Any:
    kinds = {type(value) for value in values}
    return kinds.pop() if len(kinds) == 1 else Any
