"""The import directions of ARCHITECTURE.md, checked by walking every module's imports."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STDLIB_ONLY_SIP = {"softswitch.sip"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                names.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("path", _modules("softswitch/sip"), ids=lambda p: p.name)
def test_sip_core_imports_only_stdlib_and_itself(path: Path) -> None:
    import sys

    for name in _imports(path):
        if name.startswith("softswitch.sip"):
            continue
        assert _top(name) in sys.stdlib_module_names, f"{path.name} imports {name}: softswitch/sip is sans-IO, stdlib only"
        assert _top(name) not in ("asyncio", "socket", "selectors"), f"{path.name} imports {name}: no I/O in the SIP core"


@pytest.mark.parametrize("path", _modules("media"), ids=lambda p: str(p.relative_to(ROOT)))
def test_media_never_imports_softswitch_or_config(path: Path) -> None:
    bad = {n for n in _imports(path) if _top(n) in ("softswitch", "config", "cli")}
    assert not bad, f"{path} imports {bad}"
    if path.name != "engine.py":
        assert "asyncio" not in {_top(n) for n in _imports(path)}, f"{path}: only media/engine.py uses asyncio"


@pytest.mark.parametrize("path", _modules("config"), ids=lambda p: p.name)
def test_config_never_imports_softswitch_or_media(path: Path) -> None:
    bad = {n for n in _imports(path) if _top(n) in ("softswitch", "media", "cli")}
    assert not bad, f"{path} imports {bad}"


def test_nothing_imports_cli() -> None:
    for package in ("softswitch", "media", "config"):
        for path in _modules(package):
            if path.name == "__main__.py":
                continue  # `python -m softswitch` is the CLI's second entry point
            assert "cli" not in {_top(n) for n in _imports(path)}, f"{path} imports cli"
