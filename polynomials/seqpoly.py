"""Sequence polynomials (theory.md §2.2): an op's action on one channel stated as a polynomial identity.

A column ``u[0..N-1]`` is the polynomial ``u(X) = sum_i u[i] X^i``. Each ``*_identity`` helper evaluates the op
with the symbolic backend (``lhs``, the sequence polynomial of the op's output) and computes the claimed algebraic
form independently with sympy polynomial arithmetic (``rhs``); the identity holds iff ``lhs == rhs`` (both are
returned expanded). Filters are numbers, the sequence entries may be sympy symbols.

- causal convolution:  ``(h * u)(X) = h(X) u(X) mod X^N``
- cyclic convolution:  ``(h * u)(X) = h(X) u(X) mod (X^N - 1)``
- shift down by ``s`` (BaseConv with ``impulse(s)``, ``b1 = 1``): ``X^s u(X) mod X^N``   (not ``X^(s+1)``)
- shift up by ``s`` (cyclic BaseConv with ``impulse(N - s)``, ``b1 = 1[i + s < N]``): ``u(X) quo X^s``
- gating (BaseConv product of channels ``a``, ``b``): the Hadamard product ``sum_i a[i] b[i] X^i``
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .baseconv import BaseConv
from .conv import CausalConv, CyclicConv
from .evaluate import evaluate


def to_polynomial(column: Sequence[Any], X: Any) -> Any:
    """``sum_i column[i] X^i``, expanded."""
    import sympy

    return sympy.expand(sum((sympy.sympify(c) * X**i for i, c in enumerate(column)), sympy.Integer(0)))


def coefficients(poly: Any, X: Any, seq_len: int) -> list[Any]:
    """The coefficients of ``X^0 .. X^(N-1)`` of a polynomial in ``X`` (a sequence of length ``N``)."""
    import sympy

    p = sympy.Poly(sympy.expand(poly), X)
    return [sympy.expand(p.coeff_monomial(X**i)) for i in range(seq_len)]


def hadamard(p: Any, q: Any, X: Any, seq_len: int) -> Any:
    """The coefficient-wise product of two sequence polynomials of length ``N``."""
    return to_polynomial([a * b for a, b in zip(coefficients(p, X, seq_len), coefficients(q, X, seq_len))], X)


def _column(u: Sequence[Any]) -> np.ndarray:
    return np.asarray(list(u), dtype=object)[:, None]  # (N, 1)


def _rem(p: Any, m: Any, X: Any) -> Any:
    import sympy

    return sympy.expand(sympy.rem(sympy.expand(p), m, X))


def causal_conv_identity(taps: Sequence[Any], u: Sequence[Any], X: Any) -> tuple[Any, Any]:
    """``(CausalConv(taps) u)(X)`` vs ``h(X) u(X) mod X^N``."""
    out = evaluate(CausalConv(np.asarray(list(taps), dtype=object)[:, None]), _column(u), backend="symbolic")[:, 0]
    return to_polynomial(out, X), _rem(to_polynomial(taps, X) * to_polynomial(u, X), X ** len(u), X)


def cyclic_conv_identity(taps: Sequence[Any], u: Sequence[Any], X: Any) -> tuple[Any, Any]:
    """``(CyclicConv(taps) u)(X)`` vs ``h(X) u(X) mod (X^N - 1)``."""
    out = evaluate(CyclicConv(np.asarray(list(taps), dtype=object)[:, None]), _column(u), backend="symbolic")[:, 0]
    return to_polynomial(out, X), _rem(to_polynomial(taps, X) * to_polynomial(u, X), X ** len(u) - 1, X)


def impulse(s: int, length: int) -> np.ndarray:
    """The filter ``X^s`` with ``length`` taps: ``(length,)`` int64."""
    if not 0 <= s < length:
        raise ValueError(f"s={s}: an impulse needs 0 <= s < length={length}")
    h = np.zeros(length, dtype=np.int64)
    h[s] = 1
    return h


def shift_down_op(s: int, seq_len: int, width: int = 1) -> BaseConv:
    """theory.md §4.1 [fixed]: ``W = 0, h = impulse(s), b1 = 1, b2 = 0`` gives ``y[i] = u[i - s]`` (zero-filled)."""
    h = np.repeat(impulse(s, s + 1)[:, None], width, axis=1)
    if s + 1 > seq_len:
        raise ValueError(f"s={s}: shifting by s needs s < seq_len={seq_len}")
    return BaseConv(np.zeros((width, width), dtype=np.int64), h, np.ones(width, dtype=np.int64), None)


def shift_up_op(s: int, seq_len: int, width: int = 1) -> BaseConv:
    """theory.md §4.1 [fixed]: one *cyclic* layer, ``h = impulse(N - s)``, ``b1 = 1[i + s < N]``:
    ``y[i] = u[(i + s) mod N] * 1[i + s < N] = u[i + s]`` zero-filled (for ``0 < s < N``)."""
    if not 0 < s < seq_len:
        raise ValueError(f"s={s}: shift up needs 0 < s < seq_len={seq_len}")
    h = np.repeat(impulse(seq_len - s, seq_len)[:, None], width, axis=1)
    mask = (np.arange(seq_len) + s < seq_len).astype(np.int64)
    b1 = np.repeat(mask[:, None], width, axis=1)
    return BaseConv(np.zeros((width, width), dtype=np.int64), h, b1, None, cyclic=True)


def shift_identity(u: Sequence[Any], s: int, X: Any) -> tuple[Any, Any]:
    """Shift down by ``s`` vs multiplication by ``X^s`` (mod ``X^N``)."""
    n = len(u)
    out = evaluate(shift_down_op(s, n), _column(u), backend="symbolic")[:, 0]
    return to_polynomial(out, X), _rem(X**s * to_polynomial(u, X), X**n, X)


def shift_up_identity(u: Sequence[Any], s: int, X: Any) -> tuple[Any, Any]:
    """Shift up by ``s`` (cyclic impulse plus mask) vs the quotient ``u(X) quo X^s``."""
    import sympy

    out = evaluate(shift_up_op(s, len(u)), _column(u), backend="symbolic")[:, 0]
    return to_polynomial(out, X), sympy.expand(sympy.quo(to_polynomial(u, X), X**s, X))


def gating_op(width: int = 2, a: int = 0, b: int = 1) -> BaseConv:
    """theory.md §4.1: product of channels ``a`` and ``b`` into ``b``: ``W[a -> b] = 1``, ``h = impulse(0)`` on
    ``b``, no biases (every other channel reads 0)."""
    w = np.zeros((width, width), dtype=np.int64)
    w[a, b] = 1
    h = np.zeros((1, width), dtype=np.int64)
    h[0, b] = 1
    return BaseConv(w, h)


def gating_identity(a: Sequence[Any], b: Sequence[Any], X: Any) -> tuple[Any, Any]:
    """BaseConv gating of two channels vs the Hadamard product of their sequence polynomials."""
    if len(a) != len(b):
        raise ValueError(f"a, b: lengths {len(a)} and {len(b)} must agree")
    u = np.asarray([list(a), list(b)], dtype=object).T  # (N, 2)
    out = evaluate(gating_op(), u, backend="symbolic")[:, 1]
    return to_polynomial(out, X), hadamard(to_polynomial(a, X), to_polynomial(b, X), X, len(a))
