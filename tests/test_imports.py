"""The package's modules import one another in one direction: no import circles (imports inside
functions included: deferring one only hides a circle), and each layer imports only layers below
it: lang <- compile <- {optim, analysis} <- evaluate <- search <- commands.

The graph is read from the source with `ast`, so the test sees every import statement, whether or
not it runs."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "discover"

# Layer of each top-level part of the package; a module may import modules of its own layer or
# lower ones. `extras` and `plotting` are leaf utilities (they import nothing of discover's).
LAYERS = {
    "extras": 0, "plotting": 0, "lang": 0, "library": 0,
    "compile": 1, "tasks": 1,
    "optim": 2, "analysis": 2, "export": 2,
    "evaluate": 3,
    "search": 4,
    "commands": 5, "benchmarks": 5, "cli": 5, "__main__": 5, "": 5,  # "": discover/__init__.py
}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (``from . import x`` counts as importing ``x``)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".")[: None if is_package else -1]
                    base = base[: len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in modules else prefix for a in node.names]
            for target in targets:
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in modules and target != name and target.startswith("discover"):
                    deps.add(target)
        graph[name] = deps
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _layer(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    return LAYERS[part]


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "discover.analysis.views" in graph["discover.commands.show"]  # imported inside a function
    assert "discover.compile.lower" in graph["discover.compile.foreach"]


def test_circles_are_found():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles():
    assert circles(import_graph()) == []


def test_every_module_has_a_layer():
    unknown = sorted(m for m in import_graph() if (m.split(".")[1] if "." in m else "") not in LAYERS)
    assert not unknown, f"give these a layer in LAYERS: {unknown}"


@pytest.mark.parametrize("module", sorted(import_graph()))
def test_imports_go_down_the_layers(module):
    upward = sorted(d for d in import_graph()[module] if _layer(d) > _layer(module))
    assert not upward, f"{module} (layer {_layer(module)}) imports higher layers: {upward}"
