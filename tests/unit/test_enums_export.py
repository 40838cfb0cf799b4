"""``gameserver enums export``: every format holds every shared enum and parses in its own language."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import enums
from gameserver.cli import main
from gameserver.commands.enums_export import FORMATS, export, shared_enums

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _tool_missing(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def test_every_enum_in_all_is_exported() -> None:
    assert [cls.__name__ for cls in shared_enums()] == enums.__all__


def test_json_round_trips_every_value() -> None:
    data = json.loads(export("json"))
    for cls in shared_enums():
        assert data[cls.__name__] == {member.name: member.value for member in cls}


def test_cli_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "enums.json"
    assert main(["enums", "export", "--format", "json", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["ItemKind"]["COIN"] == enums.ItemKind.COIN


def test_cli_writes_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["enums", "export", "-f", "typescript"]) == 0
    assert "export enum ItemKind {" in capsys.readouterr().out


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        export("cobol")
    assert set(FORMATS) == {"json", "csharp", "lua", "typescript"}


def test_csharp_has_int_enums_and_string_constants() -> None:
    text = export("csharp")
    assert "public enum ItemKind" in text and "COIN = 1," in text
    assert 'public const string BAD_REQUEST = "bad_request";' in text
    assert text.count("{") == text.count("}")


def test_lua_escapes_non_ascii_strings() -> None:
    from enum import StrEnum

    class Greeting(StrEnum):
        HELLO = 'n\u00ef "hi"'

    assert 'HELLO = "n\\195\\175 \\034hi\\034",' in export("lua", [Greeting])


@pytest.mark.timeout(300)  # the first run fetches typescript from the npm registry
def test_typescript_compiles(tmp_path: Path) -> None:
    if shutil.which("npx") is None:
        _tool_missing("npx (Node.js) is not installed: apt-get install nodejs npm")
    source = tmp_path / "enums.ts"
    source.write_text(export("typescript"))
    # Uses the use site the way a client would: the enum values must be typed as declared.
    (tmp_path / "use.ts").write_text(
        'import { ItemKind, ErrorCode } from "./enums";\n'
        "const coin: number = ItemKind.COIN;\n"
        "const code: string = ErrorCode.BAD_REQUEST;\nexport { coin, code };\n"
    )
    command = ["npx", "--yes", "-p", "typescript", "tsc", "--noEmit", "--strict", str(source), str(tmp_path / "use.ts")]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        _tool_missing("npx could not fetch typescript in time (is the npm registry reachable?)")
    if result.returncode != 0 and "error TS" not in result.stdout:
        _tool_missing(f"npx could not run tsc: {result.stderr.strip()[-300:]}")
    assert result.returncode == 0, result.stdout


# The compilers below come from Debian's packages; in CI, scripts/services installs the missing ones.


def test_lua_compiles(tmp_path: Path) -> None:
    luac = next((name for name in ("luac5.4", "luac5.3", "luac") if shutil.which(name)), None)
    if luac is None:
        _tool_missing("luac is not installed: apt-get install lua5.4")
    source = tmp_path / "enums.lua"
    source.write_text(export("lua"))
    result = subprocess.run([luac, "-p", str(source)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_csharp_compiles(tmp_path: Path) -> None:
    if shutil.which("mcs") is None:
        _tool_missing("mcs (the Mono C# compiler) is not installed: apt-get install mono-mcs")
    source = tmp_path / "Enums.cs"
    source.write_text(export("csharp"))
    # A use site as a Unity client would write it: the enums' values typed as declared, switchable on.
    use = tmp_path / "Use.cs"
    use.write_text(
        "using GameServer;\n"
        "public static class Use {\n"
        "    public static int Coin() { return (int)ItemKind.COIN; }\n"
        "    public static bool Retry(string code) {\n"
        "        switch (code) {\n"
        "            case ErrorCode.UNAVAILABLE: case ErrorCode.TIMEOUT: return true;\n"
        "            default: return false;\n"
        "        }\n"
        "    }\n"
        "}\n"
    )
    out = tmp_path / "Enums.dll"
    command = ["mcs", "-target:library", "-warnaserror+", f"-out:{out}", str(source), str(use)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.exists()
