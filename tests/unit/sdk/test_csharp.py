"""gameserver.sdk.csharp: the SDK description as C# source, and the checked-in layer of the shipped modules."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from gameserver.sdk import csharp
from gameserver.sdk.model import describe
from tests.unit.sdk.shop import shop_api

ROOT = Path(__file__).resolve().parents[3]
CHECKED_IN = ROOT / csharp.GENERATED


def test_the_checked_in_layer_is_what_the_shipped_modules_generate() -> None:
    files = csharp.render(describe())
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in CHECKED_IN.iterdir()}
    stale = sorted(name for name in files.keys() | on_disk.keys() if files.get(name) != on_disk.get(name))
    assert not stale, (
        f"{stale} are stale: run `python -m gameserver.sdk.csharp` "
        f"(or `gameserver sdk csharp --out {csharp.GENERATED}`)"
    )


def test_rendering_is_deterministic_and_needs_nothing_but_the_json() -> None:
    api = shop_api()
    again = json.loads(json.dumps(api))
    assert csharp.render(api) == csharp.render(again) == csharp.render(copy.deepcopy(api))
    assert sorted(csharp.render(api)) == [
        "Enums.cs",
        "Enums.cs.meta",
        "ErrorCodes.cs",
        "ErrorCodes.cs.meta",
        "Modules.cs",
        "Modules.cs.meta",
        "Types.cs",
        "Types.cs.meta",
    ]


def test_one_typed_method_per_handler() -> None:
    modules = csharp.render(shop_api())["Modules.cs"]
    assert (
        "        public Task<Receipt> BuyAsync(ItemKind item, long count, string note = null, long? limit = null, "
        "CallOptions options = null)\n"
        "        {\n"
        "            var wire = new Dictionary<string, object>();\n"
        '            wire["item"] = item;\n'
        '            wire["count"] = count;\n'
        '            if (note != null) wire["note"] = note;\n'
        '            if (limit != null) wire["limit"] = limit;\n'
        '            return client.CallAsync<Receipt>("shop.buy", wire, Receipt.FromWire, options);\n'
        "        }\n"
    ) in modules
    # the docstring's first line, XML-escaped, reST literals as <c>; login and deadline; a default for reference
    summary = "Buys <c>count</c> of <c>item</c> &lt;at once&gt; &amp; pays. Raises not_enough_items."
    assert f"/// <summary>{summary}</summary>" in modules
    assert '/// <param name="limit">optional: null leaves it out (the server\'s default: 5)</param>' in modules
    assert "/// <remarks><c>shop.buy</c>; needs a login; server deadline 10 s.</remarks>" in modules
    assert "/// <remarks><c>shop.anything</c>; no login needed; server deadline 2.5 s.</remarks>" in modules
    # keywords escaped, the method's own names kept free, object where the type is unknown
    assert (
        "public Task<object> AnythingAsync(object value, List<Line> @params, "
        "Dictionary<string, double> options_ = null, CallOptions options = null)" in modules
    )
    assert 'wire["params"] = @params;' in modules and 'if (options_ != null) wire["options"] = options_;' in modules
    assert 'client.CallAsync<object>("shop.anything", wire, Wire.Any, options)' in modules
    # a string enum is a string; X | Y is object; a list of nullable objects reads each with OrNull
    assert "public Task<List<Receipt>> MixedAsync(string code, object either, CallOptions options = null)" in modules
    assert "d0 => Wire.List<Receipt>(d0, d1 => Wire.OrNull<Receipt>(d1, Receipt.FromWire))" in modules
    assert 'client.CallAsync<long>("state.count", wire, Wire.Int, options)' in modules
    # grouped by module on ApiClient; a module named like a GameClient member gets a suffix
    assert "            Shop = new ShopModule(this);\n            StateModule = new StateModule(this);\n" in modules
    assert "public StateModule StateModule { get; private set; }" in modules


def test_typeddicts_become_classes_read_from_and_written_to_wire_maps() -> None:
    types = csharp.render(shop_api())["Types.cs"]
    assert types.index("class Line") < types.index("class Receipt")  # sorted
    for line in (
        "public ItemKind Item { get; set; }",
        "public Dictionary<string, long> Left { get; set; }",
        "public List<Line> Lines { get; set; }",
        "public long? When { get; set; }",  # int | None
        "public string Memo { get; set; }",  # NotRequired[str]
        "public ItemKind? Extra { get; set; }",  # NotRequired[ItemKind]
        'value.When = Wire.Read<long?>(Wire.Field(data, "when"), d0 => Wire.Nullable<long>(d0, Wire.Int));',
        'value.Extra = Wire.Read<ItemKind?>(Wire.Field(data, "extra"), '
        "d0 => Wire.Nullable<ItemKind>(d0, Wire.Enum<ItemKind>));",
        'value.Memo = Wire.Read<string>(Wire.Field(data, "memo"), d0 => Wire.OrNull<string>(d0, Wire.Str));',
        'wire["when"] = When;',  # required, may be null: always sent
        'if (Memo != null) wire["memo"] = Memo;',  # not required: left out when null
    ):
        assert line in types, line


def test_enums_and_error_codes() -> None:
    files = csharp.render(shop_api())
    assert "    public enum ItemKind\n    {\n        COIN = 1,\n" in files["Enums.cs"]
    assert (
        '    public static class ErrorCode\n    {\n        public const string BAD_REQUEST = "bad_request";'
        in files["Enums.cs"]
    )
    assert '        public const string FAMILY_NOT_FOUND = "family_not_found";\n' in files["ErrorCodes.cs"]
    api = shop_api()
    api["errors"].append({"name": "BAD_REQUEST", "code": "bad_request", "module": True})  # listed twice: once
    assert csharp.render(api)["ErrorCodes.cs"].count("BAD_REQUEST") == 1
    api["errors"].append({"name": "BAD_REQUEST", "code": "other", "module": True})
    with pytest.raises(ValueError, match="two codes"):
        csharp.render(api)


def test_meta_files_have_stable_guids() -> None:
    files = csharp.render(shop_api())
    guids = {name: files[name].split("guid: ")[1].split("\n")[0] for name in files if name.endswith(".meta")}
    assert len(set(guids.values())) == 4 and all(len(guid) == 32 for guid in guids.values())
    shipped = csharp.render(describe())  # another API, the same file names: the same GUIDs
    assert all(shipped[name] == files[name] for name in guids)


def test_what_it_refuses() -> None:
    with pytest.raises(ValueError, match="version 2"):
        csharp.render({**shop_api(), "version": 2})
    api = shop_api()
    api["modules"][0]["functions"][0]["returns"] = {"kind": "tuple"}
    with pytest.raises(ValueError, match="unknown type kind 'tuple'"):
        csharp.render(api)
    api = shop_api()
    twin: dict[str, Any] = {"kind": "object", "name": "Receipt", "fields": []}
    api["modules"][0]["functions"][0]["returns"] = {"kind": "list", "items": twin}
    with pytest.raises(ValueError, match="two different TypedDicts render as the C# class Receipt"):
        csharp.render(api)


def test_names() -> None:
    assert csharp.pascal("set_role") == "SetRole" and csharp.pascal("family") == "Family"
    assert csharp.camel("family_id") == "familyId" and csharp.camel("event") == "@event"


def test_write_replaces_its_own_stale_files_only(tmp_path: Path) -> None:
    (tmp_path / "Old.cs").write_text(f"{csharp.HEADER}\nnamespace X {{}}\n")
    (tmp_path / "Old.cs.meta").write_text("meta")
    (tmp_path / "Mine.cs").write_text("// hand-written\n")
    files = csharp.render(shop_api())
    written = csharp.write(files, tmp_path)
    assert [path.name for path in written] == sorted(files)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([*files, "Mine.cs"])
    assert csharp.write(files, tmp_path) == written  # again: the same, nothing to do


def test_every_file_of_the_unity_package_has_a_meta_with_its_own_guid() -> None:
    package = ROOT / "clients" / "csharp"
    assets = [p for p in package.rglob("*") if p.suffix != ".meta" and "Tests~" not in p.relative_to(package).parts]
    missing = [str(p.relative_to(package)) for p in assets if not Path(f"{p}.meta").exists()]
    assert not missing, f"Unity ignores these in a package installed from git: {missing}"
    guids = [Path(f"{p}.meta").read_text().split("guid: ")[1].split("\n")[0] for p in assets]
    assert len(set(guids)) == len(guids)


def test_main_writes_the_shipped_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert csharp.main(["--out", str(tmp_path)]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(p.name for p in CHECKED_IN.iterdir())
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / name) for name in sorted(csharp.render(describe()))]
