"""Shared by the kernel tests: running a script under Triton's interpreter.

``TRITON_INTERPRET`` is read when the ``@triton.jit`` kernels are defined (at module import), so a script that tests
kernels on CPU tensors runs in a fresh Python, from the repository root (so that ``tests.frontier...`` imports).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCHMARKS = Path(ROOT) / "benchmarks"


def load_benchmark(name: str, monkeypatch: pytest.MonkeyPatch):
    """``benchmarks/<name>.py`` imported as a module, with its folder on ``sys.path`` for this test (as ``python
    benchmarks/<name>.py`` has it: a script may import ``frontier_speed`` or ``_machine`` beside it)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Prepended to every interpreted script. Compatibility shim for triton 3.6's interpreter with NumPy >= 2.3: it
# converts loop bounds (1-element arrays) with int(array), which NumPy now refuses for arrays of ndim 1; read the
# element instead. And ``tensor_loop_indices``, for a script to call on the modules whose kernels treat a loop index
# as a Triton scalar. Test-only.
INTERPRETER_SHIM = textwrap.dedent(
    """
    import numpy as np
    import triton.runtime.interpreter as interp

    _patch_tensor = interp._patch_lang_tensor

    def _patched(tensor, scope):
        _patch_tensor(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(np.asarray(self.handle.data).reshape(-1)[0]))

    interp._patch_lang_tensor = _patched


    def tensor_loop_indices(*module_names):
        # kernels of the named modules see their `for i in range(n)` indices as Triton scalars, as compiled code
        # does (fla's state kernels call `i_t.to(tl.int64)`, a method a Python int lacks)
        import builtins
        import importlib

        import triton.language as tl

        def scalar_range(*bounds):
            for i in builtins.range(*(int(b) for b in bounds)):
                yield tl.full((), i, tl.int32)

        for name in module_names:
            importlib.import_module(name).range = scalar_range
    """
)


def run_interpreted(script: str, *, timeout: int = 600, env: dict[str, str] | None = None) -> None:
    """Run ``script`` (dedented, after :data:`INTERPRETER_SHIM`) with ``TRITON_INTERPRET=1`` and ``env``; assert that
    it exits 0 with ``ok`` as its last line of output."""
    # One CPU thread: with torch's default intra-op threads, the interpreted AdamW test failed in 2 of 10 processes
    # (7 of 6300 elements 6e-5 apart, always the same ones) and in 0 of 10 with one thread; the kernels' arithmetic
    # does not depend on it (the interpreter runs on CPU tensors; on a GPU no CPU thread is involved).
    full_env = {**os.environ, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    code = INTERPRETER_SHIM + textwrap.dedent(script)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout[-2000:] + out.stderr[-3000:]


@pytest.fixture
def interpreted():
    """:func:`run_interpreted`, for the tests that run kernels under Triton's interpreter."""
    return run_interpreted
