"""gameserver.sdk.model: the function table, enums and error codes as one sorted, JSON-able description."""

from __future__ import annotations

import json
import types
from typing import Any, Literal, NotRequired, TypedDict

import pytest

from enums import FamilyRole, ItemKind
from gameserver.dispatch.registry import handler
from gameserver.errors import ConfigError
from gameserver.sdk.model import describe, type_of


class Pet(TypedDict):
    name: str
    kind: ItemKind
    tags: NotRequired[list[str]]


class Owner(TypedDict):
    uid: int
    pets: list[Pet]
    best: Pet | None


async def adopt(name: str, kind: ItemKind, *, uid: int, db: Any, **_: Any) -> Owner:
    """Adopts a pet.

    More text that is not the first line.
    """
    raise NotImplementedError


async def search(
    limit: int = 20, role: FamilyRole = FamilyRole.MEMBER, around: float | None = None, *, log: Any
) -> list[Pet]:
    raise NotImplementedError


async def untyped(anything, *, args: dict[str, Any]):  # type: ignore[no-untyped-def]
    raise NotImplementedError


def package(**handlers: Any) -> types.ModuleType:
    module = types.ModuleType("pets")
    module.HANDLERS = handlers  # type: ignore[attr-defined]
    return module


def api() -> dict[str, Any]:
    return describe(
        {"zoo": package(search=handler(search, login=False, timeout=2.5), adopt=adopt, untyped=untyped)},
        default_timeout=7.0,
    )


def test_functions_are_sorted_with_login_timeout_doc_params_and_returns() -> None:
    (zoo,) = api()["modules"]
    assert zoo["name"] == "zoo"
    assert [f["name"] for f in zoo["functions"]] == ["adopt", "search", "untyped"]
    adopt_fn, search_fn, untyped_fn = zoo["functions"]
    assert adopt_fn["fn"] == "zoo.adopt"
    assert (adopt_fn["login"], adopt_fn["timeout"], adopt_fn["doc"]) == (True, 7.0, "Adopts a pet.")
    assert adopt_fn["params"] == [
        {"name": "name", "type": {"kind": "str"}, "required": True},
        {"name": "kind", "type": {"kind": "enum", "name": "ItemKind"}, "required": True},
    ]
    assert (search_fn["login"], search_fn["timeout"], search_fn["doc"]) == (False, 2.5, "")
    assert search_fn["params"] == [
        {"name": "limit", "type": {"kind": "int"}, "required": False, "default": 20},
        {"name": "role", "type": {"kind": "enum", "name": "FamilyRole"}, "required": False, "default": 1},
        {
            "name": "around",
            "type": {"kind": "union", "of": [{"kind": "float"}, {"kind": "null"}]},
            "required": False,
            "default": None,
        },
    ]
    assert untyped_fn["params"] == [{"name": "anything", "type": {"kind": "any"}, "required": True}]
    assert untyped_fn["returns"] == {"kind": "any"}


def test_typed_dict_returns_are_objects_with_required_and_optional_fields() -> None:
    adopt_fn, search_fn, _ = api()["modules"][0]["functions"]
    pet = {
        "kind": "object",
        "name": "Pet",
        "fields": [
            {"name": "name", "type": {"kind": "str"}, "required": True},
            {"name": "kind", "type": {"kind": "enum", "name": "ItemKind"}, "required": True},
            {"name": "tags", "type": {"kind": "list", "items": {"kind": "str"}}, "required": False},
        ],
    }
    assert adopt_fn["returns"] == {
        "kind": "object",
        "name": "Owner",
        "fields": [
            {"name": "uid", "type": {"kind": "int"}, "required": True},
            {"name": "pets", "type": {"kind": "list", "items": pet}, "required": True},
            {"name": "best", "type": {"kind": "union", "of": [pet, {"kind": "null"}]}, "required": True},
        ],
    }
    assert search_fn["returns"] == {"kind": "list", "items": pet}


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (Any, {"kind": "any"}),
        (None, {"kind": "null"}),
        (bool, {"kind": "bool"}),
        (bytes, {"kind": "bytes"}),
        (list, {"kind": "list", "items": {"kind": "any"}}),
        (dict, {"kind": "dict", "values": {"kind": "any"}}),
        (dict[str, int], {"kind": "dict", "values": {"kind": "int"}}),
        (tuple[int, ...], {"kind": "list", "items": {"kind": "int"}}),
        (tuple[int, str], {"kind": "list", "items": {"kind": "union", "of": [{"kind": "int"}, {"kind": "str"}]}}),
        (int | str | None, {"kind": "union", "of": [{"kind": "int"}, {"kind": "str"}, {"kind": "null"}]}),
        (int | Any, {"kind": "any"}),
        (Literal["a", "b"], {"kind": "str"}),
        (ItemKind, {"kind": "int"}),  # not a shared enum in this call: its value type
    ],
)
def test_annotation_types(annotation: Any, expected: dict[str, Any]) -> None:
    assert type_of(annotation) == expected


def test_enums_keep_all_order_and_errors_list_every_code() -> None:
    description = api()
    names = [e["name"] for e in description["enums"]]
    assert names == [
        "ErrorCode",
        "AuthErrorCode",
        "ModuleErrorCode",
        "ModerationErrorCode",
        "ItemKind",
        "FamilyRole",
        "MailKind",
    ]
    item_kind = description["enums"][names.index("ItemKind")]
    assert item_kind["kind"] == "int"
    assert ["COIN", 1] in item_kind["members"]
    assert description["enums"][0]["kind"] == "str"
    errors = {e["code"]: e for e in description["errors"]}
    assert errors["bad_request"] == {"name": "BAD_REQUEST", "code": "bad_request", "module": False}
    assert errors["family_full"]["module"] is True
    assert errors["username_taken"]["module"] is True


def test_the_shipped_modules_describe_deterministically_as_json() -> None:
    first = json.dumps(describe(), sort_keys=False)
    assert first == json.dumps(describe(), sort_keys=False)
    names = [m["name"] for m in json.loads(first)["modules"]]
    assert names == sorted(names)
    assert {"account", "auth", "family", "friends", "inventory", "leaderboard", "mail", "session", "sys"} <= set(names)


def test_a_module_the_server_would_refuse_is_refused() -> None:
    def not_async() -> None:
        pass

    with pytest.raises(ConfigError, match="must be an async function"):
        describe({"bad": package(sync=not_async)})
