"""Weight arrays of the operator IR: validation at construction and conversion per evaluation backend.

A weight is a NumPy array whose entries are integers, finite float64 numbers, or exact numbers stored in an object
array (``fractions.Fraction``, Python ``int``, sympy numbers such as ``Rational(1, 3)`` or ``sqrt(2)``). Validation
happens once, when an op is built; NaN or infinite entries raise ``ValueError`` naming the op and the field.

sympy is never imported here: an entry can only be a sympy object if sympy is already loaded, so the check reads
``sys.modules`` (this keeps ``import mqarkit.polynomials`` free of sympy, as the import-direction rule requires).
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction
from numbers import Integral, Real

import numpy as np


class NotExactError(ValueError):
    """An operator (or a constant) has no exact rational / polynomial evaluation under the requested backend."""


def _sympy_module():
    return sys.modules.get("sympy")


def is_sympy_number(x: object) -> bool:
    sp = _sympy_module()
    return sp is not None and isinstance(x, sp.Basic) and bool(x.is_number)


def _check_entry(x: object, where: str) -> None:
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{where}: boolean entry {x!r}; weights must be numbers")
    if isinstance(x, (Integral, Fraction)):
        return
    if isinstance(x, Real):
        if not math.isfinite(float(x)):
            raise ValueError(f"{where}: entry {x!r} is not finite (NaN/inf weights are not allowed)")
        return
    if is_sympy_number(x):
        sp = _sympy_module()
        if x.has(sp.nan, sp.zoo, sp.oo, -sp.oo) or x.is_finite is False or x.is_real is False:
            raise ValueError(f"{where}: entry {x!r} is not a finite real number")
        return
    raise TypeError(f"{where}: entry {x!r} of type {type(x).__name__} is not a number (int, float, Fraction, sympy)")


def as_weight(value: object, *, op: str, field: str, ndim: int | tuple[int, ...]) -> np.ndarray:
    """Validate one weight array: numeric, finite, of the allowed number of dimensions.

    Integer arrays become int64, floating arrays float64, anything else an object array whose entries are checked
    one by one. The array is copied and made read-only, so an op cannot change under a cached conversion.
    """
    where = f"{op}.{field}"
    arr = np.array(value, dtype=object) if isinstance(value, (list, tuple)) else np.array(value)
    if arr.dtype == object and arr.size:
        # lists of plain ints / floats deserve a numeric dtype
        flat = arr.ravel()
        if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in flat):
            arr = arr.astype(np.int64)
        elif all(isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) for x in flat):
            arr = arr.astype(np.float64)
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in allowed:
        raise ValueError(
            f"{where}: has {arr.ndim} dimensions (shape {arr.shape}); expected {' or '.join(map(str, allowed))}"
        )
    if arr.dtype.kind == "b":
        raise TypeError(f"{where}: boolean array; weights must be numbers")
    if arr.dtype.kind in "iu":
        arr = arr.astype(np.int64)
    elif arr.dtype.kind == "f":
        arr = arr.astype(np.float64)
        if not np.isfinite(arr).all():
            bad = np.argwhere(~np.isfinite(arr))[0].tolist()
            raise ValueError(f"{where}: entry at {bad} is {arr[tuple(bad)]!r}; NaN/inf weights are not allowed")
    elif arr.dtype == object:
        arr = arr.copy()
        for idx, x in np.ndenumerate(arr):
            _check_entry(x, f"{where}[{', '.join(map(str, idx))}]")
    else:
        raise TypeError(f"{where}: dtype {arr.dtype} is not supported (use int, float64 or an object array)")
    arr.setflags(write=False)
    return arr


def as_scalar(value: object, *, op: str, field: str) -> object:
    """Validate one scalar weight (e.g. an inverse temperature); returns it unchanged."""
    _check_entry(value, f"{op}.{field}")
    return value


def to_float64(arr: np.ndarray) -> np.ndarray:
    """Any validated weight -> float64 (Fractions and sympy numbers rounded to nearest)."""
    if arr.dtype == object:
        return np.array([float(x) for x in arr.ravel()], dtype=np.float64).reshape(arr.shape)
    return np.asarray(arr, dtype=np.float64)


def to_fraction(x: object, where: str = "value") -> Fraction:
    """One number -> ``Fraction`` exactly; floats are taken at their exact binary value; irrationals raise."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, (Integral, np.integer)):
        return Fraction(int(x))
    if isinstance(x, (float, np.floating)):
        if not math.isfinite(x):
            raise ValueError(f"{where}: {x!r} is not finite, so it has no exact value")
        return Fraction(float(x))
    if is_sympy_number(x):
        sp = _sympy_module()
        if isinstance(x, sp.Rational):
            return Fraction(int(x.p), int(x.q))
        raise NotExactError(f"{where}: {x} is not rational, so the exact (Fraction) backend cannot represent it")
    raise TypeError(f"{where}: {x!r} of type {type(x).__name__} is not a number")


def to_fraction_array(arr: np.ndarray, where: str = "value") -> np.ndarray:
    out = np.empty(np.shape(arr), dtype=object)
    for idx, x in np.ndenumerate(np.asarray(arr, dtype=object)):
        out[idx] = to_fraction(x, where)
    return out
