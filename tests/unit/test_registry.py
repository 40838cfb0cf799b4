"""The function table (gameserver/dispatch/registry.py): signatures read once, client args checked on each call."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from gameserver.dispatch.registry import Entry, Handler, build_table, compile_entry, discover, handler
from gameserver.errors import BadRequest, ConfigError, ModuleError
from tests.fixtures.modules import PATH as FIXTURE_MODULES

INJECTABLE = frozenset({"config", "db", "redis", "uid", "session", "log", "args"})


def compile(fn: Any, **settings: Any) -> Entry:
    return compile_entry("test.fn", Handler(fn, **settings), injectable=INJECTABLE, default_timeout=10.0)


def bad_request(entry: Entry, args: dict[str, Any]) -> str:
    with pytest.raises(BadRequest) as caught:
        entry.check_args(args)
    assert caught.value.code == "bad_request"
    return caught.value.message


async def typed(
    count: int,
    ratio: float,
    name: str,
    flag: bool,
    items: list[int],
    extra: dict[str, Any],
    blob: bytes,
    anything: Any,
    unannotated,  # type: ignore[no-untyped-def]
    maybe: int | None = None,
    label: str = "x",
) -> None:
    pass


VALID = {
    "count": 1,
    "ratio": 0.5,
    "name": "n",
    "flag": True,
    "items": [1],
    "extra": {},
    "blob": b"",
    "anything": object(),
    "unannotated": None,
}


def test_valid_args_pass() -> None:
    entry = compile(typed)
    entry.check_args(VALID)
    entry.check_args(VALID | {"maybe": 3, "label": "y"})
    entry.check_args(VALID | {"maybe": None})


def test_unknown_argument() -> None:
    assert (
        bad_request(compile(typed), VALID | {"colour": 1, "bogus": 2}) == "unknown argument bogus, colour for test.fn"
    )


def test_missing_argument() -> None:
    args = dict(VALID)
    del args["count"], args["name"]
    assert bad_request(compile(typed), args) == "missing argument count, name for test.fn"


def test_unknown_is_reported_before_missing() -> None:
    assert bad_request(compile(typed), {"nope": 1}) == "unknown argument nope for test.fn"


def test_a_client_arg_naming_an_injected_one_is_unknown() -> None:
    async def fn(a: int, *, uid: int) -> None:
        pass

    assert bad_request(compile(fn), {"a": 1, "uid": 5}) == "unknown argument uid for test.fn"


def test_non_string_keys_are_unknown_arguments() -> None:
    assert bad_request(compile(typed), VALID | {b"raw": 1}) == "unknown argument b'raw' for test.fn"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("count", "1", "count must be an integer"),
        ("count", 1.0, "count must be an integer"),
        ("count", True, "count must be an integer"),  # bool is not an int
        ("count", None, "count must be an integer"),
        ("ratio", "0.5", "ratio must be a number"),
        ("ratio", False, "ratio must be a number"),
        ("name", 1, "name must be a string"),
        ("name", b"n", "name must be a string"),
        ("flag", 1, "flag must be true or false"),
        ("items", {"a": 1}, "items must be a list"),
        ("extra", [], "extra must be a map"),
        ("blob", "text", "blob must be bytes"),
        ("maybe", "3", "maybe must be an integer or null"),
        ("maybe", True, "maybe must be an integer or null"),
        ("label", None, "label must be a string"),
    ],
)
def test_ill_typed_argument(name: str, value: Any, message: str) -> None:
    assert bad_request(compile(typed), VALID | {name: value}) == message


def test_float_accepts_an_integer() -> None:
    compile(typed).check_args(VALID | {"ratio": 2})


def test_bool_param_accepts_bool_only() -> None:
    compile(typed).check_args(VALID | {"flag": False})


def test_unions_and_optional() -> None:
    async def fn(a: int | str, b: float | None, c: bool | int) -> None:
        pass

    entry = compile(fn)
    entry.check_args({"a": "x", "b": None, "c": True})
    entry.check_args({"a": 1, "b": 1, "c": 3})
    assert bad_request(entry, {"a": 1.5, "b": None, "c": 1}) == "a must be an integer or a string"
    assert bad_request(entry, {"a": True, "b": None, "c": 1}) == "a must be an integer or a string"
    assert bad_request(entry, {"a": 1, "b": True, "c": 1}) == "b must be a number or null"


def test_an_any_member_makes_the_param_unchecked() -> None:
    async def fn(a: Any | None, b: int | Any) -> None:
        pass

    entry = compile(fn)
    assert entry.checked == ()
    entry.check_args({"a": object(), "b": "x"})


def test_defaults_make_params_optional() -> None:
    entry = compile(typed)
    assert entry.required == frozenset(VALID)
    assert entry.params["maybe"].default is None
    assert entry.params["label"].default == "x"


def test_any_args_accepts_anything() -> None:
    async def fn(*, args: dict[str, Any]) -> None:
        pass

    entry = compile(fn, any_args=True)
    entry.check_args({"whatever": object(), b"raw": 1})


def test_settings_and_injection_are_compiled() -> None:
    async def fn(a: int, *, db: object, uid: int | None, optional: int = 0) -> None:
        """First line.

        More.
        """

    entry = compile_entry("m.f", handler(fn, login=False, timeout=2.5), injectable=INJECTABLE, default_timeout=1)
    assert (entry.name, entry.login, entry.timeout, entry.doc) == ("m.f", False, 2.5, "First line.")
    assert entry.inject == ("db", "uid")  # `optional` has a default and nothing provides it
    assert compile(fn).timeout == 10.0 and compile(fn).login


def test_kwargs_handlers_get_every_resource() -> None:
    async def fn(a: int, *, db: object, **kwargs: Any) -> None:
        pass

    assert compile(fn).inject is None


def test_underscore_kwargs_handlers_get_only_what_they_name() -> None:
    async def fn(a: int, *, db: object, **_: Any) -> None:  # `_`: the rest goes unused, so it is not built
        pass

    assert compile(fn).inject == ("db",)


def test_describe() -> None:
    async def fn(a: int, b: str | None = None) -> None:
        """Adds things."""

    assert compile(fn).describe() == {
        "fn": "test.fn",
        "login": True,
        "timeout": 10.0,
        "idempotent": False,
        "doc": "Adds things.",
        "args": [
            {"name": "a", "type": "an integer", "required": True},
            {"name": "b", "type": "a string or null", "required": False, "default": None},
        ],
    }


# Start-up refusals: a table that cannot work never starts.


def refused(fn: Any, **settings: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        compile(fn, **settings)
    return str(caught.value)


def test_sync_function_is_refused() -> None:
    def fn() -> None:
        pass

    # A module error (not a setting's), with where the function is defined.
    with pytest.raises(ModuleError) as caught:
        compile(fn)
    line = fn.__code__.co_firstlineno
    assert str(caught.value) == (
        f"handler test.fn: {fn.__qualname__!r} must be an async function (tests/unit/test_registry.py:{line})"
    )


def test_async_generator_is_refused() -> None:
    async def fn() -> Any:
        yield 1

    assert "must be an async function" in refused(fn)


def test_client_param_named_like_a_resource_is_refused() -> None:
    async def fn(db: int) -> None:
        pass

    assert refused(fn) == "handler test.fn: parameter db is a resource name; put it after `*`"


def test_per_request_names_are_resources_too() -> None:
    async def fn(uid: int) -> None:
        pass

    assert "parameter uid is a resource name" in refused(fn)


def test_keyword_only_that_nothing_can_fill_is_refused() -> None:
    async def fn(*, mailer: object) -> None:
        pass

    message = refused(fn)
    assert message.startswith("handler test.fn: nothing provides keyword-only mailer (resources: ")
    assert "db" in message


def test_var_positional_is_refused() -> None:
    async def fn(*rest: int) -> None:
        pass

    assert refused(fn) == "handler test.fn: *rest cannot be filled; clients pass named args"


def test_positional_only_is_refused() -> None:
    async def fn(a: int, /) -> None:
        pass

    assert refused(fn) == "handler test.fn: parameter a is positional-only; clients pass names"


def test_any_args_with_client_params_is_refused() -> None:
    async def fn(a: int, *, args: dict[str, Any]) -> None:
        pass

    assert "any_args handlers take no client parameters" in refused(fn, any_args=True)


def test_unresolvable_annotation_is_refused() -> None:
    async def fn(a: NoSuchType) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    assert refused(fn).startswith("handler test.fn: cannot read its annotations: ")


# Discovery: module packages under modules/ and in modules.paths.


def write_package(root: Path, name: str, body: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text(textwrap.dedent(body))


def test_builtin_and_path_modules_are_discovered() -> None:
    found = discover([FIXTURE_MODULES])
    assert {"sys", "testkit"} <= set(found)
    found = {name: found[name] for name in ("sys", "testkit")}  # the other modules need their resources
    table = build_table(found, injectable=INJECTABLE, default_timeout=3.0)
    assert table["sys.echo"].login is False
    assert table["testkit.hang"].timeout == 0.05
    assert table["testkit.whoami"].login is True


def test_disabled_modules_are_skipped() -> None:
    assert "sys" not in discover([], ["sys"])
    assert "testkit" not in discover([FIXTURE_MODULES], ["testkit"])


def test_duplicate_module_name_is_refused(tmp_path: Path) -> None:
    write_package(tmp_path, "sys", "HANDLERS = {}")
    with pytest.raises(ConfigError, match=f"modules.paths: module sys in {tmp_path} is already loaded"):
        discover([str(tmp_path)])


def test_a_package_without_handlers_is_refused(tmp_path: Path) -> None:
    write_package(tmp_path, "empty", "VALUE = 1")
    with pytest.raises(ConfigError, match=r"module empty: its __init__.py needs HANDLERS"):
        discover([str(tmp_path)])


def test_a_missing_modules_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a folder"):
        discover([str(tmp_path / "nope")])


def test_a_bad_handler_in_a_package_stops_the_table(tmp_path: Path) -> None:
    write_package(
        tmp_path,
        "broken",
        """
        def sync():
            pass

        HANDLERS = {"sync": sync}
        """,
    )
    with pytest.raises(ConfigError, match="handler broken.sync: .* must be an async function"):
        build_table({"broken": discover([str(tmp_path)])["broken"]}, injectable=INJECTABLE, default_timeout=1.0)
