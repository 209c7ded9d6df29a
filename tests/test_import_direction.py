"""The import direction of the design, checked in fresh interpreters.

`mqarkit` <- `polynomials` <- `constructions` <- `proofs_checks`; `gpu` may import the first three. Importing
`mqarkit`, `mqarkit.polynomials` or `mqarkit.constructions` must not load torch; importing `mqarkit.gpu` must not load
sympy.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

NO_TORCH = [
    "mqarkit",
    "mqarkit.task",
    "mqarkit.cli",
    "mqarkit.information",
    "mqarkit.polynomials",
    "mqarkit.constructions",
    "mqarkit.proofs_checks.verify",
]
NO_SYMPY = [
    "mqarkit",
    "mqarkit.gpu",
    "mqarkit.gpu.loaders",
    "mqarkit.gpu.export",
    "mqarkit.gpu.scale",
    "mqarkit.gpu.grouped_baseconv",
    "mqarkit.gpu.grouped_lookup",
    "mqarkit.gpu.frontier",
    "mqarkit.gpu.frontier.cli",
    "mqarkit.gpu.frontier.runner",
    "mqarkit.gpu.frontier.plot",
]


def _loaded_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("module", NO_TORCH)
def test_does_not_load_torch(module: str) -> None:
    loaded = _loaded_after_import(module)
    assert "torch" not in loaded, f"importing {module} loaded torch"


@pytest.mark.parametrize("module", NO_SYMPY)
def test_does_not_load_sympy(module: str) -> None:
    loaded = _loaded_after_import(module)
    assert "sympy" not in loaded, f"importing {module} loaded sympy"


def test_core_loads_neither_torch_nor_sympy() -> None:
    loaded = _loaded_after_import("mqarkit")
    assert not ({"torch", "sympy"} & loaded)


# ---------------------------------------------------------------- the package direction, in fresh interpreters
@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("mqarkit.polynomials", ("mqarkit.constructions", "mqarkit.proofs_checks", "mqarkit.gpu")),
        ("mqarkit.constructions", ("mqarkit.proofs_checks", "mqarkit.gpu")),
        ("mqarkit.proofs_checks.verify", ("mqarkit.gpu",)),
    ],
)
def test_package_direction(module: str, forbidden: tuple[str, ...]) -> None:
    loaded = _loaded_after_import(module)
    hits = sorted(m for m in loaded if m.startswith(forbidden))
    assert not hits, f"importing {module} loaded {hits}"


# ---------------------------------------------------------------- gpu/: no import loop, two wings (static)
GPU_ROOT = Path(__file__).resolve().parent.parent / "gpu"
SHARED = {"mqarkit.gpu", "mqarkit.gpu.device", "mqarkit.gpu.timing", "mqarkit.gpu.lazy_exports"}  # both wings use


def _module_name(path: Path) -> str:
    parts = path.relative_to(GPU_ROOT).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join(("mqarkit", "gpu", *parts))


def _gpu_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(GPU_ROOT.rglob("*.py"))}


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every ``mqarkit.gpu`` module ``path`` imports, at module level or inside functions (not under
    ``if TYPE_CHECKING:``); ``from package import name`` counts as importing ``package.name`` when that is a module."""
    tree = ast.parse(path.read_text())
    type_only = [n for n in ast.walk(tree) if isinstance(n, ast.If) and ast.unparse(n.test).endswith("TYPE_CHECKING")]
    skip = {id(n) for block in type_only for n in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = (f"{node.module}.{a.name}" for a in node.names)
            found |= {name if name in known else node.module for name in names}
    return {m for m in found if m in known}


def _gpu_import_graph() -> nx.DiGraph:
    modules = _gpu_modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        graph.add_edges_from((name, target) for target in _imports(path, set(modules)) if target != name)
    return graph


def test_gpu_has_no_import_loop() -> None:
    graph = _gpu_import_graph()
    # a package's __init__ runs before its submodules anyway: edges into packages are not loops of their own
    packages = {n for n, p in _gpu_modules().items() if p.name == "__init__.py"}
    graph.remove_edges_from([(a, b) for a, b in list(graph.edges) if b in packages])
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import loops in gpu/: {cycles}"


def test_gpu_wings_do_not_import_each_other() -> None:
    graph = _gpu_import_graph()
    frontier = {n for n in graph if n.startswith("mqarkit.gpu.frontier")}
    construction = set(graph) - frontier - SHARED
    assert frontier and construction
    crossing = sorted(
        (a, b) for a, b in graph.edges if (a in frontier and b in construction) or (a in construction and b in frontier)
    )
    assert not crossing, f"the frontier and construction wings import each other: {crossing}"
