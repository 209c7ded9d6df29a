"""The one tolerance policy of mqarkit.

Exact arithmetic (sympy, ``fractions.Fraction``) is compared with ``==``, never through this module. Every
floating-point comparison in the library and the tests goes through :func:`assert_close`, whose tolerance is a
function of the dtype of the computation alone: one table, below. Loosening an entry needs a reason written next to it.

Two forms of comparison use the table: elementwise (:func:`assert_close`) and relative to the array's scale
(:func:`assert_close_scaled`, for sums such as gradients, where an entry at which terms cancel carries their
rounding). For a fast path that computes in a low precision (tf32 tiles, bf16 autocast), the low-precision rule
(:func:`assert_as_accurate_as_reference`) adds one alternative: outside the table, it must be no further from the
float32 reference than twice the naive reference computed in the same precision is: the precision's own cost,
measured in the same test, never a loosened constant.

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
    a, e = _finite_pair(actual, expected, context)
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
    scale = _scale(e)
    assert_close(_as_float64(actual) / scale, e / scale, dtype=dtype, context=context)


_TINY = float(np.finfo(np.float64).tiny)  # what an all-zero array's scale is taken as


def _scale(e: np.ndarray) -> float:
    """``max |e|`` (the smallest positive float64 for an all-zero array): the scale errors are taken relative to."""
    return max(float(np.abs(e).max(initial=0.0)), _TINY)


def _finite_pair(actual: object, expected: object, context: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as float64, of one shape and finite, else an ``AssertionError`` saying which."""
    a, e = _as_float64(actual), _as_float64(expected)
    if a.shape != e.shape:
        raise AssertionError(f"{context}: shape {a.shape} != expected shape {e.shape}")
    if not (np.isfinite(a).all() and np.isfinite(e).all()):
        bad = np.argwhere(~(np.isfinite(a) & np.isfinite(e)))
        raise AssertionError(f"{context}: non-finite values at {bad[:5].tolist()}")
    return a, e


def scaled_error(actual: object, expected: object) -> float:
    """``max |actual - expected| / max |expected|``: the largest error relative to the array's scale."""
    a, e = _finite_pair(actual, expected)
    return float(np.abs(a - e).max(initial=0.0)) / _scale(e)


def relative_rms_error(actual: object, expected: object) -> float:
    """``‖actual − expected‖₂ / ‖expected‖₂``: the error of the array as a whole."""
    a, e = _finite_pair(actual, expected)
    return float(np.linalg.norm(a - e)) / max(float(np.linalg.norm(e)), _TINY)


def assert_as_accurate_as_reference(
    actual: object, expected: object, reference_low: object, *, dtype: object, context: str = ""
) -> None:
    """A computation in a low precision (tf32 tiles, bf16 autocast) checked against the float32 ``expected``, with the
    naive reference run in the same precision, ``reference_low``, as the measure of what that precision costs.

    All three arrays must be finite and of one shape. Passes if ``actual`` is within the ``dtype`` row of the table of
    ``expected`` (relative to its scale, as :func:`assert_close_scaled`). Otherwise the rounding of the low precision
    itself moves the function by more than the table allows (a gradient summed over many bf16 products, or an entry at
    which a normalisation divides out a near-zero number): then ``actual`` must be no further from ``expected`` than
    twice ``reference_low`` is, both in the largest entry (:func:`scaled_error`) and as a whole
    (:func:`relative_rms_error`): the fast path adds no error beyond the naive form's in the same precision. A wrong
    kernel fails, being further off than the naive form.
    """
    _finite_pair(actual, expected, context)
    _finite_pair(reference_low, expected, f"{context} (the reference in the same precision)")
    try:
        assert_close_scaled(actual, expected, dtype=dtype, context=context)
        return
    except AssertionError as outside_the_table:
        for measure in (scaled_error, relative_rms_error):
            error, reference_error = measure(actual, expected), measure(reference_low, expected)
            if error > 2 * reference_error:
                raise AssertionError(
                    f"{context}: {measure.__name__} {error:.3g} from the float32 reference, more than twice the naive "
                    f"reference's in the same precision ({reference_error:.3g}); {outside_the_table}"
                ) from None
