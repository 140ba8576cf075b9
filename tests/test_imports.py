"""Imports inside sarbench run one way: no module, and no subpackage, imports itself back.

Every ``import`` and ``from ... import`` of ``sarbench/`` is read from the syntax tree, including
the deferred ones inside functions (a deferred import still ties the two modules together; it only
hides the circle from the interpreter). Two graphs are checked:

* modules: ``sarbench.models.sar`` -> ``sarbench.config`` and so on;
* rooms: each module collapsed to its top-level room under ``sarbench`` (``models``, ``report``,
  ``analysis``, ``cases``, ...), so that e.g. ``report`` and ``analysis`` cannot import each other
  both ways through different modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sarbench"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["sarbench", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _targets(module: str, path: Path, node, modules) -> list[str]:
    """The sarbench modules an import statement of ``module`` names."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    out = []
    for name in names:
        if not name.startswith("sarbench"):
            continue
        while name not in modules and "." in name:
            name = name.rsplit(".", 1)[0]
        if name != module:
            out.append(name)
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the sarbench modules it imports (at the top or deferred)."""
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[module] = {t for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                         for t in _targets(module, path, node, modules)}
    return graph


def rooms(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph with each module collapsed to its room: ``sarbench.report.cells`` -> ``report``."""
    def room(module):
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else "sarbench"

    out: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if module == "sarbench":
            continue
        out.setdefault(room(module), set()).update(room(t) for t in targets if t != "sarbench")
    return {r: t - {r} for r, t in out.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v):
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


def test_the_graph_sees_deferred_imports():
    graph = import_graph()
    assert "sarbench.config" in graph["sarbench.models.sar"]
    assert "sarbench.data" in graph["sarbench.models.gru4rec"]  # imported inside defaults()


def test_modules_import_one_way():
    assert cycles(import_graph()) == []


def test_rooms_import_one_way():
    assert cycles(rooms(import_graph())) == []


def test_configurations_are_a_leaf():
    assert import_graph()["sarbench.config"] == set()


@pytest.mark.parametrize("module", ["sarbench.models.sar", "sarbench.models.gru4rec", "sarbench.models.hf",
                                    "sarbench.models.trxl", "sarbench.models.interface"])
def test_no_model_imports_the_trainer_or_the_presets(module):
    assert not import_graph()[module] & {"sarbench.train", "sarbench.presets", "sarbench.cases"}


def test_report_and_analysis_import_one_way():
    graph = rooms(import_graph())
    assert not ("analysis" in graph["report"] and "report" in graph["analysis"])


def test_a_cycle_is_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
