"""The package's dependency rules, read from the source (every import, lazy ones included; only
``if TYPE_CHECKING:`` blocks are skipped): no import cycle, the config knows no representation,
representations never run the loop, trainers never reach the seed engine or result I/O, and the
seed program's empty-result shapes are assembled in the engine only."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from simdyn import objectives

PACKAGE = Path(__file__).resolve().parents[1] / "simdyn"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def imports_of(name: str) -> set[str]:
    """The simdyn modules ``name`` imports (``from pkg import sub`` counts as ``pkg.sub``)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parts = name.split(".")
                if path.name != "__init__.py":
                    parts = parts[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in MODULES:
                    found.add(full)
                elif base in MODULES:
                    found.add(base)
    found.discard(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_among_simdyns_modules():
    graph = {name: imports_of(name) for name in MODULES}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {name: imports_of(name) for name in MODULES}
    graph["simdyn.config"] = graph["simdyn.config"] | {"simdyn.objectives"}  # the old circle
    assert any("simdyn.config" in c and "simdyn.objectives" in c for c in _cycles(graph))


def test_the_config_imports_nothing_above_it_and_names_no_representation():
    assert imports_of("simdyn.config") == set()
    text = MODULES["simdyn.config"].read_text()
    for name in objectives.REGISTRY:
        assert not re.search(rf"[\"'`]{name}[\"'`]", text), f"config.py names {name!r}"


@pytest.mark.parametrize(
    "module",
    sorted(
        m
        for m in MODULES
        if m.startswith("simdyn.objectives")
        or m in ("simdyn.projected", "simdyn._src.minibatch_objective", "simdyn.moments")
    ),
)
def test_representations_never_import_the_loop_or_a_trainer(module):
    assert not imports_of(module) & {
        "simdyn.loop",
        "simdyn._src.train",
        "simdyn._src.generic_train",
    }


@pytest.mark.parametrize(
    "module", ["simdyn.loop", "simdyn._src.train", "simdyn._src.generic_train"]
)
def test_the_loop_and_trainers_never_import_the_seed_engine_or_result_io(module):
    engine_and_io = {
        "simdyn.engine",
        "simdyn.distributed",
        "simdyn._src.simulation",
        "simdyn._src.generic_simulation",
        "simdyn.summary",
        "simdyn._src.plots",
    }
    assert not imports_of(module) & engine_and_io


def _eval_shape_calls(path: Path) -> int:
    tree = ast.parse(path.read_text())
    return sum(
        1
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("eval_shape")
    )


def test_empty_result_shapes_are_assembled_in_the_engine_only():
    # Code calls only (docstring examples may show eval_shape to readers). The encoder
    # representation traces abstractly for a different purpose: XLA's cost analysis of its
    # gradient (lower() needs abstract parameters), not a seed program's result.
    allowed = {"simdyn/engine.py", "simdyn/objectives/encoder.py"}
    roots = [PACKAGE, PACKAGE.parent / "experiments"]
    calls = {
        str(p.relative_to(PACKAGE.parent)): _eval_shape_calls(p)
        for root in roots
        for p in root.rglob("*.py")
    }
    assert {p for p, n in calls.items() if n} <= allowed
    assert calls["simdyn/engine.py"] >= 1
