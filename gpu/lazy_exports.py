"""Names of a package that load on first access (PEP 562), for ``mqarkit.gpu`` and ``mqarkit.gpu.frontier``.

Importing a submodule runs its package's ``__init__`` first; eager re-exports there would make every such import pay
for every other submodule. A package instead keeps a table ``name -> submodule`` and takes its ``__getattr__`` and
``__dir__`` from :func:`lazy_exports`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_exports(package: str, table: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose names ``table`` maps to submodules (relative names)."""

    def __getattr__(name: str) -> object:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        vars(sys.modules[package])[name] = value  # later accesses skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
