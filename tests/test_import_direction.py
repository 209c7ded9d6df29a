"""The import direction of the design, checked in fresh interpreters.

`mqarkit` <- `polynomials` <- `constructions` <- `proofs_checks`; `gpu` may import the first three. Importing
`mqarkit`, `mqarkit.polynomials` or `mqarkit.constructions` must not load torch; importing `mqarkit.gpu` must not load
sympy.
"""

from __future__ import annotations

import subprocess
import sys

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
    "mqarkit.gpu.plot",
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
