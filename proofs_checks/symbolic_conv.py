"""Convolution and BaseConv over sympy expressions, written from theory.md section 2 for the errata checks.

This is deliberately independent of the operator IR (``mqarkit.polynomials``): the errata E3, E4, E8 are statements
about the *mathematics* of the operators, and checking them against a second, minimal implementation is what makes
them checks rather than restatements.

Polynomial view: channel ``u`` of length ``N`` is ``u(X) = Σ_i u[i] X^i``; causal convolution with ``h`` is
``h(X) u(X) mod X^N``, cyclic convolution is ``h(X) u(X) mod (X^N - 1)``.
"""

from __future__ import annotations

import sympy as sp

X = sp.Symbol("X")


def _coeffs(poly: sp.Expr, n: int) -> list[sp.Expr]:
    p = sp.Poly(sp.expand(poly), X)
    return [sp.expand(p.coeff_monomial(X**i)) for i in range(n)]


def _product(h: list[sp.Expr], u: list[sp.Expr]) -> tuple[int, sp.Expr]:
    """``(N, h(X) u(X))`` expanded, for ``h``, ``u`` of equal length ``N``."""
    n = len(u)
    if len(h) != n:
        raise ValueError(f"h: length {len(h)} must equal len(u)={n}")
    hp = sum(hk * X**k for k, hk in enumerate(h))
    up = sum(uk * X**k for k, uk in enumerate(u))
    return n, sp.expand(hp * up)


def causal_conv(h: list[sp.Expr], u: list[sp.Expr]) -> list[sp.Expr]:
    """``(h * u)[i] = Σ_{k <= i} h[k] u[i - k]``: ``h``, ``u`` (N,) -> (N,), computed as ``h(X) u(X) mod X^N``."""
    n, prod = _product(h, u)
    return _coeffs(sp.rem(prod, X**n, X), n) if n else []


def cyclic_conv(h: list[sp.Expr], u: list[sp.Expr]) -> list[sp.Expr]:
    """``(h ⊛ u)[i] = Σ_k h[k] u[(i - k) mod N]``, computed as ``h(X) u(X) mod (X^N - 1)``."""
    n, prod = _product(h, u)
    return _coeffs(sp.rem(prod, X**n - 1, X), n)


def impulse(s: int, n: int) -> list[sp.Expr]:
    """The filter ``X^s`` of length ``n``."""
    if not 0 <= s < n:
        raise ValueError(f"s={s}: must satisfy 0 <= s < n={n}")
    return [sp.Integer(1 if k == s else 0) for k in range(n)]


def generic_baseconv_layer(u: list[list[sp.Expr]], tag: str, *, cyclic: bool = False) -> list[list[sp.Expr]]:
    """One BaseConv layer with *generic* (symbolic) weights: ``y = (u W + b1) ⊙ (h ∗ u + b2)``.

    ``u``: N rows of d channel entries. ``W`` (d x d), ``h`` (N x d), position-dependent ``b1``, ``b2`` (N x d) are
    fresh symbols named with ``tag``. Returns N rows of d entries."""
    n, d = len(u), len(u[0])
    w = [[sp.Symbol(f"W{tag}_{a}_{b}") for b in range(d)] for a in range(d)]
    conv = causal_conv if not cyclic else cyclic_conv
    out_cols = []
    for q in range(d):
        h = [sp.Symbol(f"h{tag}_{k}_{q}") for k in range(n)]
        col = conv(h, [u[i][q] for i in range(n)])
        lin = [sum(u[i][a] * w[a][q] for a in range(d)) + sp.Symbol(f"b1{tag}_{i}_{q}") for i in range(n)]
        out_cols.append([sp.expand(lin[i] * (col[i] + sp.Symbol(f"b2{tag}_{i}_{q}"))) for i in range(n)])
    return [[out_cols[q][i] for q in range(d)] for i in range(n)]
