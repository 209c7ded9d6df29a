"""The three arithmetics an op is evaluated in: float64, exact rationals, and symbolic polynomials.

Every op is written once, as array code over an abstract number type; a backend supplies the numbers:

- ``Float64Backend``: NumPy float64 arrays. Weights are converted once per op and cached on the op.
- ``ExactBackend``: object arrays of ``fractions.Fraction``. Floats are taken at their exact binary value;
  irrational sympy constants raise :class:`NotExactError`.
- ``SymbolicBackend``: object arrays of elements of a sparse polynomial ring ``D[x_1, ..., x_n]`` (sympy's
  ``PolyRing``), whose generators are the free symbols of the input. Ring elements are always expanded, so sums and
  products stay cheap; the evaluator converts them back to expanded sympy expressions at the end. The coefficient
  domain ``D`` is ``QQ`` while every constant is rational; when a constant is irrational (e.g. ``sqrt(3)`` in a
  Taylor feature map) the conversion raises :class:`NeedsExpressionDomain` and the evaluator reruns the whole
  evaluation over sympy's expression domain ``EX`` (correct, slower).

Non-polynomial operations (softmax, division) are the op's business: softmax raises :class:`NotExactError` under the
exact and symbolic backends; division is allowed under the exact backend only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from .weights import NotExactError, to_float64, to_fraction, to_fraction_array


class NeedsExpressionDomain(Exception):
    """Internal: a constant is not in QQ; the symbolic evaluation restarts over the expression domain EX."""


def _cache(op: object) -> dict:
    # Ops are frozen dataclasses (eq=False, so hashed by identity); the cache lives in the instance dict.
    return op.__dict__.setdefault("_backend_cache", {})


class Backend:
    name: str = ""
    exact: bool = True

    def key(self) -> tuple:
        return (self.name,)

    def weight(self, op: object, field: str) -> np.ndarray:
        """The op's weight ``field`` converted to this backend's numbers (cached per op and backend)."""
        cache = _cache(op)
        k = (*self.key(), "weight", field)
        if k not in cache:
            cache[k] = self.convert_array(getattr(op, field), f"{type(op).__name__}.{field}")
        return cache[k]

    def derived(self, op: object, label: str, make: Callable[[], Any]) -> Any:
        """Anything derived from an op's weights (e.g. filter spectra), computed once per op and backend."""
        cache = _cache(op)
        k = (*self.key(), "derived", label)
        if k not in cache:
            cache[k] = make()
        return cache[k]

    def convert_array(self, arr: np.ndarray, where: str) -> np.ndarray:
        raise NotImplementedError

    def scalar(self, x: object, where: str = "constant") -> Any:
        raise NotImplementedError

    def sqrt(self, x: int | Fraction, where: str = "constant") -> Any:
        """``sqrt(x)`` of a non-negative rational, in this backend's numbers."""
        raise NotImplementedError

    def zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError

    def input(self, u: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Float64Backend(Backend):
    name = "float64"
    exact = False

    def convert_array(self, arr: np.ndarray, where: str) -> np.ndarray:
        out = to_float64(arr)
        out.setflags(write=False)
        return out

    def scalar(self, x: object, where: str = "constant") -> float:
        return float(x)

    def sqrt(self, x: int | Fraction, where: str = "constant") -> float:
        return math.sqrt(float(x))

    def zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape, dtype=np.float64)

    def input(self, u: np.ndarray) -> np.ndarray:
        arr = np.asarray(u)
        if arr.dtype == object:
            arr = to_float64(arr)
        arr = np.asarray(arr, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise ValueError("u: contains NaN or inf")
        return arr


def _exact_sqrt(x: Fraction, where: str) -> Fraction:
    if x < 0:
        raise ValueError(f"{where}: sqrt of negative {x}")
    num, den = math.isqrt(x.numerator), math.isqrt(x.denominator)
    if num * num != x.numerator or den * den != x.denominator:
        raise NotExactError(f"{where}: sqrt({x}) is irrational, so the exact backend cannot represent it")
    return Fraction(num, den)


class ExactBackend(Backend):
    name = "exact"

    def convert_array(self, arr: np.ndarray, where: str) -> np.ndarray:
        return to_fraction_array(arr, where)

    def scalar(self, x: object, where: str = "constant") -> Fraction:
        return to_fraction(x, where)

    def sqrt(self, x: int | Fraction, where: str = "constant") -> Fraction:
        return _exact_sqrt(Fraction(x), where)

    def zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.full(shape, Fraction(0), dtype=object)

    def input(self, u: np.ndarray) -> np.ndarray:
        arr = np.asarray(u)
        if arr.dtype.kind == "f":
            raise TypeError("u: the exact backend takes ints or Fractions (an object array), not floats")
        return to_fraction_array(arr, "u")


class SymbolicBackend(Backend):
    """Polynomials over QQ (or EX) in the free symbols of the input; see the module docstring."""

    name = "symbolic"

    def __init__(self, symbols: tuple, domain_name: str = "QQ") -> None:
        import sympy
        from sympy.polys.rings import ring

        self.symbols = tuple(symbols) if symbols else (sympy.Dummy("unused"),)
        self.domain = sympy.QQ if domain_name == "QQ" else sympy.EX
        self.domain_name = domain_name
        self.ring = ring(self.symbols, self.domain)[0]

    def key(self) -> tuple:
        # weights converted to domain elements depend only on the domain, not on the generators
        return (self.name, self.domain_name)

    def scalar(self, x: object, where: str = "constant") -> Any:
        import sympy

        if isinstance(x, (float, np.floating)):
            x = Fraction(float(x))  # exact binary value of the float
        elif isinstance(x, np.integer):
            x = int(x)
        expr = sympy.sympify(x)
        if self.domain_name == "QQ":
            if not isinstance(expr, sympy.Rational):
                raise NeedsExpressionDomain(where)
            return self.domain(int(expr.p), int(expr.q))
        return self.domain.from_sympy(expr)

    def sqrt(self, x: int | Fraction, where: str = "constant") -> Any:
        import sympy

        return self.scalar(sympy.sqrt(sympy.Rational(Fraction(x).numerator, Fraction(x).denominator)), where)

    def convert_array(self, arr: np.ndarray, where: str) -> np.ndarray:
        out = np.empty(arr.shape, dtype=object)
        for idx, x in np.ndenumerate(arr):
            out[idx] = self.scalar(x, where)
        return out

    def zeros(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.full(shape, self.ring.zero, dtype=object)

    def element(self, x: object) -> Any:
        """One input entry (number or sympy polynomial expression) -> ring element."""
        import sympy

        if isinstance(x, (float, np.floating)):
            x = Fraction(float(x))
        elif isinstance(x, np.integer):
            x = int(x)
        expr = sympy.sympify(x)
        try:
            return self.ring.from_expr(expr)
        except ValueError as err:
            if self.domain_name == "QQ" and not expr.free_symbols - set(self.symbols):
                raise NeedsExpressionDomain("u") from err
            raise ValueError(f"u: entry {expr} is not a polynomial in the input symbols") from err

    def input(self, u: np.ndarray) -> np.ndarray:
        arr = np.asarray(u, dtype=object)
        out = np.empty(arr.shape, dtype=object)
        for idx, x in np.ndenumerate(arr):
            out[idx] = self.element(x)
        return out

    def to_expr(self, arr: np.ndarray) -> np.ndarray:
        """Ring elements -> expanded sympy expressions (rational coefficients under QQ)."""
        import sympy

        out = np.empty(np.shape(arr), dtype=object)
        for idx, x in np.ndenumerate(np.asarray(arr, dtype=object)):
            if hasattr(x, "as_expr"):
                out[idx] = sympy.expand(x.as_expr()) if self.domain_name == "EX" else x.as_expr()
            else:
                out[idx] = sympy.sympify(self.domain.to_sympy(x))
        return out


def input_symbols(u: np.ndarray) -> tuple:
    """The free sympy symbols of an object array, sorted by name (the generators of the symbolic ring)."""
    syms: set = set()
    for x in np.asarray(u, dtype=object).ravel():
        syms |= getattr(x, "free_symbols", set())
    return tuple(sorted(syms, key=lambda s: (str(s), s.sort_key())))


__all__ = [
    "Backend",
    "ExactBackend",
    "Float64Backend",
    "NeedsExpressionDomain",
    "NotExactError",
    "SymbolicBackend",
    "input_symbols",
]
