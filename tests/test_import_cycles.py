"""No module of firmware/ or host_tools/ is in an import circle.

The graph comes from the source (AST), not from importing anything: every ``import`` and
``from ... import`` anywhere in a module (a lazy import inside a function counts too; it
is still a circle between the two modules), relative imports resolved against the
module's package. ``from pkg import name`` depends on the submodule ``pkg.name`` when
there is one, else on ``pkg``. A package's ``__init__`` importing its own submodules is
not counted: that is how a package exposes its names, not a circle of concern.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("firmware", "host_tools")


def _sources(base: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the packages."""
    found = {}
    for pkg in packages:
        for path in sorted((base / pkg).rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is one of our modules (``a.b.func`` -> ``a.b``)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _targets(module: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """Every module of ours that ``module`` imports."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (hit := _known(alias.name, modules)) is not None:
                    yield hit
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:  # ``from pkg import submodule``
                    yield sub
                elif (hit := _known(base, modules)) is not None:
                    yield hit


def import_graph(base: Path, packages: Iterable[str] = PACKAGES) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (never itself, nor, for a package, its own
    submodules)."""
    modules = _sources(base, packages)
    graph = {}
    for module, path in modules.items():
        graph[module] = {
            t
            for t in _targets(module, path, modules)
            if t != module and not t.startswith(module + ".")
        }
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm,
    iterative so a deep chain cannot hit the recursion limit), each sorted, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return sorted(found)


def test_no_module_is_in_an_import_circle():
    graph = import_graph(ROOT)
    found = circles(graph)
    assert found == [], "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_graph_is_the_real_one():
    """Guard against a checker that finds nothing because it reads nothing."""
    graph = import_graph(ROOT)
    assert len(graph) > 100
    assert "host_tools.provision.handlers" in graph["host_tools.provision.cli"]  # lazy import
    assert "host_tools.sltd.storebase" in graph["host_tools.sltd.pgstore"]
    assert "firmware.errors" in graph["firmware.backend_table"]
    assert sum(len(v) for v in graph.values()) > 200


def _plant(base: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_finds_planted_circles(tmp_path):
    """The checker must be able to fail: plant circles of each kind of import and see
    exactly them reported, and not the imports that make no circle."""
    _plant(
        tmp_path,
        {
            "firmware/__init__.py": "",
            # two modules, relative ``from . import`` one way, absolute the other
            "firmware/a.py": "from . import b\n",
            "firmware/b.py": "from firmware.a import thing\n",
            # a lazy import inside a function still closes a circle
            "firmware/c.py": "def f():\n    import firmware.d\n",
            "firmware/d.py": "from .c import f\n",
            # three modules round, ``from package import submodule`` style
            "firmware/e.py": "from firmware import f\n",
            "firmware/f.py": "import firmware.g.inner_name\n",
            "firmware/g.py": "from firmware.e import x\n",
            # two levels up from a subpackage
            "firmware/sub/__init__.py": "from .k import K\n",  # own submodule: no circle
            "firmware/sub/k.py": "from ..h import z\nfrom firmware.sub import other\n",
            "firmware/h.py": "from .sub import k\n",
            # imports that close nothing
            "firmware/leaf.py": "import os\nfrom firmware import a, c\nfrom firmware.errors import E\n",
            "firmware/errors.py": "import json\n",
            "host_tools/__init__.py": "",
            "host_tools/user.py": "from firmware.leaf import a\nimport firmware.e\n",
        },
    )
    graph = import_graph(tmp_path)
    assert graph["firmware.leaf"] == {"firmware.a", "firmware.c", "firmware.errors"}
    assert graph["firmware.sub"] == set()  # its own submodule is not an edge
    assert circles(graph) == [
        ["firmware.a", "firmware.b"],
        ["firmware.c", "firmware.d"],
        ["firmware.e", "firmware.f", "firmware.g"],
        ["firmware.h", "firmware.sub.k"],
    ]


def test_a_long_chain_without_a_circle_is_clean():
    chain = {f"m{i}": {f"m{i + 1}"} for i in range(sys.getrecursionlimit() + 100)}
    assert circles(chain) == []
    chain["m500"].add("m10")
    assert circles(chain) == [sorted(f"m{i}" for i in range(10, 501))]
