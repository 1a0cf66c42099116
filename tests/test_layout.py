"""The package's import graph: no cycles, and imports flow one way through its layers.

Every import counts, at module level or inside a function: an import moved into a function to
dodge a cycle is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ganbench"

# Lower layers never import higher ones. A module's layer is that of its longest matching prefix.
LAYERS = [
    ("ganbench", "ganbench.errors", "ganbench.registry", "ganbench.config", "ganbench.seeding", "ganbench.plugins",
     "ganbench.io", "ganbench.papers", "ganbench.distributed", "ganbench.checkpoint", "ganbench.monitor"),
    ("ganbench.data", "ganbench.models", "ganbench.losses"),
    ("ganbench.steps",),
    ("ganbench.train", "ganbench.flops"),
    ("ganbench.features",),
    ("ganbench.metrics",),
    ("ganbench.evaluate", "ganbench.samples"),
    ("ganbench.results", "ganbench.testing"),
    ("ganbench.runs",),
    ("ganbench.cli", "ganbench.__main__"),
]


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: dict) -> set[str]:
    """The ganbench modules ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for t in targets:
            while t and t not in known and "." in t:
                t = t.rpartition(".")[0]
            if t in known and t != name:
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def layer(name: str) -> int:
    best, depth = None, -1
    for i, members in enumerate(LAYERS):
        for m in members:
            if (name == m or name.startswith(m + ".")) and m.count(".") > depth:
                best, depth = i, m.count(".")
    assert best is not None, f"{name} is in no layer: add it to LAYERS"
    return best


def test_the_import_walker_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "ganbench" / "a.py"
    source.parent.mkdir()
    source.write_text("def f():\n    from ganbench import b\n    from .c import x\n")
    known = {"ganbench": None, "ganbench.a": source, "ganbench.b": None, "ganbench.c": None}
    assert imports("ganbench.a", source, known) == {"ganbench.b", "ganbench.c"}


def test_no_import_cycles():
    g = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(v, path):
        state[v] = 1
        for w in sorted(g[v]):
            if state.get(w) == 1:
                cycles.append(path[path.index(w):] + [w])
            elif w not in state:
                visit(w, path + [w])
        state[v] = 2

    for v in sorted(g):
        if v not in state:
            visit(v, [v])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_imports_flow_down_the_layers():
    upward = [f"{a} imports {b}" for a, targets in sorted(graph().items()) for b in sorted(targets)
              if layer(b) > layer(a)]
    assert upward == []


@pytest.mark.parametrize("package", ["data", "models", "features", "metrics", "steps"])
def test_each_registry_lives_in_its_package_base(package):
    """Registration files import the registry from ``base``, never from the package (which imports them)."""
    g = graph()
    members = [m for m in g if m.startswith(f"ganbench.{package}.")]
    assert f"ganbench.{package}.base" in members
    assert [m for m in members if f"ganbench.{package}" in g[m]] == []
