"""The one tolerance policy of mqarkit.

Exact arithmetic (sympy, ``fractions.Fraction``) is compared with ``==``, never through this module. Every
floating-point comparison in the library and the tests goes through :func:`assert_close`, whose tolerance is a
function of the dtype of the computation alone: one table, below. Loosening an entry needs a reason written next to it.

The table is keyed by dtype *name* so that this module imports neither torch nor sympy; torch tensors are accepted
duck-typed (anything with ``.detach()``) and converted to float64 NumPy arrays before comparing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


# dtype name -> tolerance. float64: a few thousand ulps of accumulated rounding over sums of length <= 65536.
# float32: ~2^-23 * sqrt(length) accumulated error with headroom. bfloat16 / float16: 8 / 11 mantissa bits.
TOLERANCES: dict[str, Tolerance] = {
    "float64": Tolerance(rtol=1e-10, atol=1e-12),
    "float32": Tolerance(rtol=2e-5, atol=1e-6),
    "tfloat32": Tolerance(rtol=2e-3, atol=1e-4),
    "float16": Tolerance(rtol=5e-3, atol=1e-3),
    "bfloat16": Tolerance(rtol=3e-2, atol=1e-2),
}


def dtype_name(dtype: object) -> str:
    """Normalise a NumPy dtype, a torch dtype or a string to a key of :data:`TOLERANCES`."""
    text = str(dtype)
    name = text.removeprefix("torch.")
    if name in ("float", "double"):
        name = {"float": "float32", "double": "float64"}[name]
    if name not in TOLERANCES:
        raise ValueError(f"dtype={text!r}: no tolerance is defined; known dtypes are {sorted(TOLERANCES)}")
    return name


def tolerance_for(dtype: object) -> Tolerance:
    """The tolerance of computations carried out in ``dtype``."""
    return TOLERANCES[dtype_name(dtype)]


def _as_float64(x: object) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch
        x = x.detach().cpu().double().numpy()  # type: ignore[attr-defined]
    return np.asarray(x, dtype=np.float64)


def assert_close(actual: object, expected: object, *, dtype: object = "float64", context: str = "") -> None:
    """Assert ``|actual - expected| <= atol + rtol * |expected|`` elementwise, with the tolerance of ``dtype``.

    ``dtype`` is the precision the *computation* ran in (not the storage dtype of the arrays). Shapes must agree
    exactly (no broadcasting). The error message names the worst element and the tolerance used.
    """
    tol = tolerance_for(dtype)
    a, e = _as_float64(actual), _as_float64(expected)
    if a.shape != e.shape:
        raise AssertionError(f"{context}: shape {a.shape} != expected shape {e.shape}")
    if not (np.isfinite(a).all() and np.isfinite(e).all()):
        bad = np.argwhere(~(np.isfinite(a) & np.isfinite(e)))
        raise AssertionError(f"{context}: non-finite values at {bad[:5].tolist()}")
    err = np.abs(a - e)
    bound = tol.atol + tol.rtol * np.abs(e)
    if (err > bound).any():
        idx = np.unravel_index(int(np.argmax(err - bound)), err.shape)
        raise AssertionError(
            f"{context}: not close at {dtype_name(dtype)} tolerance (rtol={tol.rtol}, atol={tol.atol}): "
            f"worst index {tuple(int(i) for i in idx)}: actual {a[idx]!r}, expected {e[idx]!r}, "
            f"{int((err > bound).sum())} of {err.size} elements outside"
        )


def assert_close_scaled(actual: object, expected: object, *, dtype: object = "float64", context: str = "") -> None:
    """:func:`assert_close` on both arrays divided by ``max |expected|`` (the table's tolerance, relative to the array's
    scale): for sums of many terms, such as gradients, where an entry at which the terms cancel carries their rounding,
    not its own."""
    e = _as_float64(expected)
    scale = max(float(np.abs(e).max(initial=0.0)), np.finfo(np.float64).tiny)
    assert_close(_as_float64(actual) / scale, e / scale, dtype=dtype, context=context)
