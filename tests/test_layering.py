"""Import rules from docs/architecture.md, checked on the source (AST), not by convention."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DRIVER_LIBS = {"RPi", "lgpio", "luma", "PIL", "smbus2", "psycopg", "board", "busio"}
#: The only modules that may import each driver library: its backend (and, for psycopg,
#: the index benchmark, which measures PostgreSQL itself). A new backend adds itself here.
DRIVER_HOMES = {
    "RPi": {"firmware.signals.gpio"},
    "lgpio": {"firmware.signals.gpio"},
    "luma": {"firmware.signals.display"},
    "PIL": {"firmware.signals.display"},
    "psycopg": {"host_tools.sltd.pgstore", "host_tools.bench.index"},
}
#: Names under which a config value picks a backend; code outside the backend tables
#: never compares them with a backend's name.
BACKEND_SETTINGS = {"backend", "display", "scheme"}
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


def _driver_outside_home(pkg: str) -> list[str]:
    bad = []
    for name, path in _modules(pkg):
        for mod, line, _ in _imports(path):
            lib = mod.split(".")[0]
            if lib in DRIVER_LIBS and name not in DRIVER_HOMES.get(lib, set()):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    return bad


def test_driver_libraries_only_in_their_backend_module():
    assert _driver_outside_home("firmware") + _driver_outside_home("host_tools") == []


def _is_backend_name(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return bool(node.elts) and all(_is_backend_name(e) for e in node.elts)
    return False


def _backend_branches(pkg: str) -> list[str]:
    """Comparisons of a backend setting (``cfg.signals.backend``, ``display``...) with a
    name: the code branching on which backend is in use, which the tables replace."""
    out = []
    for _name, path in _modules(pkg):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left, *node.comparators]
            setting = any(
                (isinstance(o, ast.Attribute) and o.attr in BACKEND_SETTINGS)
                or (isinstance(o, ast.Name) and o.id in BACKEND_SETTINGS)
                for o in operands
            )
            if setting and any(_is_backend_name(o) for o in operands):
                out.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}")
    return out


def test_application_code_never_branches_on_the_backend():
    assert _backend_branches("firmware") + _backend_branches("host_tools") == []


def test_rule_checker_catches_a_violation(tmp_path, monkeypatch):
    """The checker must be able to fail: plant a bad import and see it reported."""
    fake = tmp_path / "firmware"
    fake.mkdir()
    (fake / "bad.py").write_text("import host_tools.sltd\nfrom RPi import GPIO\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _violations("firmware", ("host_tools",)) == ["firmware/bad.py:1 imports host_tools.sltd"]
    assert _driver_outside_home("firmware") == ["firmware/bad.py:2 imports RPi"]


def test_backend_rules_catch_a_violation(tmp_path, monkeypatch):
    """Plant a driver import outside its backend and branches on the backend in use."""
    fake = tmp_path / "firmware" / "agent"
    fake.mkdir(parents=True)
    (fake / "wiring.py").write_text(
        "def f(cfg, display, scheme):\n"
        "    import psycopg\n"
        "    if cfg.signals.backend != 'console':\n"
        "        pass\n"
        "    opts = {} if display in ('ssd1306', 'sh1106') else {'clock': 1}\n"
        "    ok = scheme == 'postgresql' or cfg.display is None or cfg.backend == other\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _driver_outside_home("firmware") == ["firmware/agent/wiring.py:2 imports psycopg"]
    assert _backend_branches("firmware") == [
        "firmware/agent/wiring.py:3 cfg.signals.backend != 'console'",
        "firmware/agent/wiring.py:5 display in ('ssd1306', 'sh1106')",
        "firmware/agent/wiring.py:6 scheme == 'postgresql'",
    ]


@pytest.mark.parametrize("pkg", ["firmware", "host_tools"])
def test_packages_have_sources(pkg):
    assert any(True for _ in _modules(pkg))
