"""Import rules from docs/architecture.md, checked on the source (AST), not by convention."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DRIVER_LIBS = {"RPi", "lgpio", "luma", "smbus2", "psycopg", "board", "busio"}
KIOSK_ONLY = ("firmware.signals", "firmware.agent")


def _modules(pkg: str):
    for path in sorted((ROOT / pkg).rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts)
        if name.endswith(".__init__"):
            name = name[: -len(".__init__")]
        yield name, path


def _imports(path: Path):
    """(module name, lineno, at module level?) for every import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    toplevel = {id(n) for n in tree.body}
    # Statements directly under module-level if/try count as module level too.
    for n in tree.body:
        if isinstance(n, ast.If | ast.Try):
            for sub in ast.walk(n):
                if isinstance(sub, ast.Import | ast.ImportFrom):
                    toplevel.add(id(sub))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, id(node) in toplevel
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno, id(node) in toplevel


def _violations(pkg: str, forbidden: tuple[str, ...]):
    out = []
    for name, path in _modules(pkg):
        for mod, line, _ in _imports(path):
            if any(mod == f or mod.startswith(f + ".") for f in forbidden):
                out.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    return out


def test_firmware_never_imports_host_tools():
    assert _violations("firmware", ("host_tools",)) == []


def test_host_tools_never_import_kiosk_hardware_or_agent():
    assert _violations("host_tools", KIOSK_ONLY) == []


def test_driver_libraries_only_inside_functions():
    bad = []
    for pkg in ("firmware", "host_tools"):
        for name, path in _modules(pkg):
            for mod, line, toplevel in _imports(path):
                if mod.split(".")[0] in DRIVER_LIBS and toplevel:
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod} at module level")
    assert bad == []


def test_rule_checker_catches_a_violation(tmp_path, monkeypatch):
    """The checker must be able to fail: plant a bad import and see it reported."""
    fake = tmp_path / "firmware"
    fake.mkdir()
    (fake / "bad.py").write_text("import host_tools.sltd\nfrom RPi import GPIO\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _violations("firmware", ("host_tools",)) == ["firmware/bad.py:1 imports host_tools.sltd"]


@pytest.mark.parametrize("pkg", ["firmware", "host_tools"])
def test_packages_have_sources(pkg):
    assert any(True for _ in _modules(pkg))
