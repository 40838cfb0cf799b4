"""gameserver.sdk.typescript and `gameserver sdk`: the typed layer's text, its determinism, and the checked-in copy."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, TypedDict

import pytest

from enums.errors import ErrorCode
from gameserver import sdk
from gameserver.cli import main
from gameserver.sdk.model import describe
from gameserver.sdk.typescript import HEADER, render, type_expr

ROOT = Path(__file__).resolve().parents[3]
GENERATED = ROOT / "clients" / "typescript" / "src" / "generated"
REGENERATE = "gameserver sdk typescript --out clients/typescript/src/generated"


class Pet(TypedDict):
    name: str


async def adopt(name: str, tags: list[str] | None = None, *, uid: int, **_: Any) -> Pet:
    """Adopts a pet; ``name`` is its */ name."""
    raise NotImplementedError


async def count(**_: Any) -> int:
    raise NotImplementedError


def zoo_api() -> dict[str, Any]:
    module = types.ModuleType("zoo")
    module.HANDLERS = {"adopt": adopt, "count": count}  # type: ignore[attr-defined]
    return describe({"pet_shop": module})


def test_the_checked_in_typed_layer_is_current() -> None:
    files = render(describe())
    for name, text in files.items():
        on_disk = GENERATED / name
        assert on_disk.is_file(), f"{on_disk} is missing: run {REGENERATE}"
        assert on_disk.read_text(encoding="utf-8") == text, f"{on_disk} is stale: run {REGENERATE}"
    generated = {p.name for p in GENERATED.iterdir() if HEADER in p.read_text(encoding="utf-8").partition("\n")[0]}
    assert generated == set(files), f"files no longer generated are left in {GENERATED}: run {REGENERATE}"


def test_rendering_is_deterministic() -> None:
    assert render(describe()) == render(describe())


def test_one_method_per_function_with_typed_arguments_and_reply() -> None:
    api = render(zoo_api())["api.ts"]
    assert "export interface Pet {\n  name: string;\n}" in api
    assert (
        "export interface PetShopAdoptArgs {\n  name: string;\n  /** Default: `null`. */\n  tags?: string[] | null;\n}"
        in api
    )
    assert "adopt(args: PetShopAdoptArgs, options?: CallOptions): Promise<Pet> {" in api
    assert 'return this.caller.call<Pet>("pet_shop.adopt", { ...args }, options);' in api
    assert "count(options?: CallOptions): Promise<number> {" in api
    assert "   * Adopts a pet; `name` is its *\\/ name." in api  # a docstring cannot end the comment
    assert "   * `pet_shop.count`: login needed; the server's deadline is 10 s." in api
    assert "export class PetShopApi {" in api and "readonly pet_shop: PetShopApi;" in api


def test_enums_and_error_codes() -> None:
    files = render(describe())
    assert "export enum ItemKind {\n  COIN = 1," in files["enums.ts"]
    assert 'export enum ErrorCode {\n  BAD_REQUEST = "bad_request",' in files["enums.ts"]
    assert '  FAMILY_FULL: "family_full",' in files["errors.ts"]
    built_in = "".join(f"  ErrorCodes.{code.name},\n" for code in ErrorCode) + "];"
    assert built_in in files["errors.ts"]  # the built-in codes, listed apart
    assert "ErrorCodes.FAMILY_FULL," not in files["errors.ts"]
    assert all(text.startswith(HEADER + "\n") for text in files.values())


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        ({"kind": "list", "items": {"kind": "int"}}, "number[]"),
        (
            {"kind": "list", "items": {"kind": "union", "of": [{"kind": "int"}, {"kind": "null"}]}},
            "Array<number | null>",
        ),
        ({"kind": "dict", "values": {"kind": "any"}}, "Record<string, any>"),
        ({"kind": "bytes"}, "Uint8Array"),
        ({"kind": "enum", "name": "ItemKind"}, "ItemKind"),
    ],
)
def test_type_expressions(t: dict[str, Any], expected: str) -> None:
    assert type_expr(t) == expected


def test_one_name_for_two_shapes_is_refused() -> None:
    api = zoo_api()
    other = {"kind": "object", "name": "Pet", "fields": []}
    api["modules"][0]["functions"][1]["returns"] = other
    with pytest.raises(ValueError, match="two different TypedDicts are named Pet"):
        render(api)
    api["modules"][0]["functions"][1]["returns"] = {"kind": "object", "name": "ItemKind", "fields": []}
    with pytest.raises(ValueError, match="ItemKind is both enum ItemKind and TypedDict ItemKind"):
        render(api)


@pytest.mark.usefixtures("cli_env")
def test_the_command_writes_replaces_and_removes_only_its_own_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "generated"
    out.mkdir()
    (out / "old.ts").write_text(f"{HEADER}\nexport const gone = 1;\n")
    (out / "mine.ts").write_text("// hand-written, kept\n")
    assert main(["sdk", "typescript", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["api.ts", "enums.ts", "errors.ts", "index.ts", "mine.ts"]
    assert f"removed {out / 'old.ts'}" in capsys.readouterr().out
    assert (out / "api.ts").read_text() == render(describe())["api.ts"]
    assert main(["sdk", "typescript", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"{out}: up to date\n"


def test_a_language_without_an_emitter_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sdk, "LANGUAGES", ("typescript", "csharp", "cobol"))
    with pytest.raises(ValueError, match="the cobol SDK emitter is not in this build"):
        sdk.render("cobol", describe())
    with pytest.raises(ValueError, match="unknown SDK language"):
        sdk.render("fortran", describe())
