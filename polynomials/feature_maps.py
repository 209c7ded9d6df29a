"""Feature maps of linear attention: the identity and Based's second-order Taylor map (theory.md §2.3).

``TaylorMap(d')`` with ``scale=True``:  ``phi(x) = [1, x / d'^(1/4), vec(x x^T) / (sqrt(2) sqrt(d'))]``, so

    phi(q).phi(k) = 1 + q.k / sqrt(d') + (q.k)^2 / (2 d')      since  vec(q q^T).vec(k k^T) = (q.k)^2,

the Taylor polynomial of ``exp(q.k / sqrt(d'))`` to second order. Layouts:

- ``"full"``: all ``d'^2`` ordered products, width ``1 + d' + d'^2``;
- ``"compressed"``: each unordered product once, ``x_i^2 / (sqrt(2) sqrt(d'))`` on the diagonal and
  ``x_i x_j / sqrt(d')`` for ``i < j``: ``sum_i q_i^2 k_i^2 / (2d') + sum_{i<j} q_i q_j k_i k_j / d' = (q.k)^2/(2d')``,
  the same kernel with width ``1 + d' + d'(d'+1)/2``.

``scale=False`` drops the ``d'`` scalings (keeps the ``1/sqrt(2)``): ``phi(q).phi(k) = 1 + q.k + (q.k)^2 / 2``.

Each map exposes ``apply(x: (..., d')) -> (..., F)`` (the features; its numbers follow ``x``: float arrays give floats,
object arrays of Fractions give Fractions when the constants are rational, object arrays of sympy expressions give
sympy expressions with exact ``sqrt``), and ``kernel(q, k, backend) -> (..., N, N)`` with entries
``phi(q_i).phi(k_j)``, computed from ``s = q.k`` through the closed form above. Linear attention evaluates through the
kernel: it is what the op means, it needs only ``sqrt(d')`` (rational when ``d'`` is a square, e.g. 16, so the exact
backend works there) and costs ``N^2 dk`` instead of ``N^2 F``; tests check ``apply`` against ``kernel``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .backends import Backend, ExactBackend, Float64Backend

LAYOUTS = ("full", "compressed")


def _swap(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


class _ScalarBackend:
    """Constants for ``apply`` on a bare array: floats, Fractions, or sympy numbers, following the array."""

    def __init__(self, x: np.ndarray) -> None:
        self.kind = "float"
        if x.dtype == object:
            first = next(iter(x.ravel()), 0)
            self.kind = "exact" if isinstance(first, (int, Fraction, np.integer)) else "sympy"

    def sqrt(self, value: int | Fraction) -> object:
        if self.kind == "float":
            return float(np.sqrt(float(value)))
        if self.kind == "exact":
            return ExactBackend().sqrt(value, "TaylorMap constant")
        import sympy

        return sympy.sqrt(sympy.sympify(value))

    def one(self) -> object:
        if self.kind == "float":
            return 1.0
        if self.kind == "exact":
            return Fraction(1)
        import sympy

        return sympy.Integer(1)


@dataclass(frozen=True, eq=False)
class IdentityMap:
    """``phi(x) = x``: kernel ``q.k``, feature width ``d'`` (= ``input_dim`` when given)."""

    input_dim: int | None = None

    def __post_init__(self) -> None:
        if self.input_dim is not None and (isinstance(self.input_dim, bool) or int(self.input_dim) < 1):
            raise ValueError(f"IdentityMap.input_dim={self.input_dim!r}: must be an int >= 1")

    @property
    def width(self) -> int:
        if self.input_dim is None:
            raise ValueError("IdentityMap.width: unknown without input_dim; use feature_width(dk)")
        return int(self.input_dim)

    def feature_width(self, dk: int) -> int:
        return dk

    def check_input_dim(self, dk: int) -> None:
        if self.input_dim is not None and self.input_dim != dk:
            raise ValueError(f"IdentityMap.input_dim={self.input_dim}: the projected key width is dk={dk}")

    def apply(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x)

    def kernel(self, q: np.ndarray, k: np.ndarray, backend: Backend) -> np.ndarray:
        return q @ _swap(k)

    def degree(self) -> int:
        return 1


@dataclass(frozen=True, eq=False)
class TaylorMap:
    input_dim: int
    layout: str = "full"
    scale: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.input_dim, bool) or not isinstance(self.input_dim, (int, np.integer)) or self.input_dim < 1:
            raise ValueError(f"TaylorMap.input_dim={self.input_dim!r}: must be an int >= 1")
        if self.layout not in LAYOUTS:
            raise ValueError(f"TaylorMap.layout={self.layout!r}: must be one of {LAYOUTS}")
        if not isinstance(self.scale, (bool, np.bool_)):
            raise ValueError(f"TaylorMap.scale={self.scale!r}: must be a bool")

    @property
    def width(self) -> int:
        d = int(self.input_dim)
        return 1 + d + (d * d if self.layout == "full" else d * (d + 1) // 2)

    def feature_width(self, dk: int) -> int:
        self.check_input_dim(dk)
        return self.width

    def check_input_dim(self, dk: int) -> None:
        if dk != self.input_dim:
            raise ValueError(f"TaylorMap.input_dim={self.input_dim}: the projected key width is dk={dk}")

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Features ``(..., d') -> (..., F)``; see the module docstring for the layout."""
        x = np.asarray(x)
        d = int(self.input_dim)
        if x.shape[-1] != d:
            raise ValueError(f"TaylorMap.apply: input has shape {x.shape}; last axis must be input_dim={d}")
        c = _ScalarBackend(x)
        one = c.one()
        root2 = c.sqrt(2)
        lin_scale = one / c.sqrt(c.sqrt(d)) if self.scale else one
        quad_scale = one / (root2 * c.sqrt(d)) if self.scale else one / root2
        cross_scale = one / c.sqrt(d) if self.scale else one
        ones = np.ones(x.shape[:-1] + (1,), dtype=x.dtype) if x.dtype != object else np.full(x.shape[:-1] + (1,), one)
        lin = x * lin_scale
        outer = x[..., :, None] * x[..., None, :]  # (..., d', d')
        if self.layout == "full":
            quad = outer.reshape(*x.shape[:-1], d * d) * quad_scale
        else:
            iu, ju = np.triu_indices(d)
            quad = outer[..., iu, ju]
            coef = np.array([quad_scale if i == j else cross_scale for i, j in zip(iu, ju)], dtype=object)
            quad = quad * (coef.astype(np.float64) if c.kind == "float" else coef)
        return np.concatenate([ones, lin, quad], axis=-1)

    def kernel(self, q: np.ndarray, k: np.ndarray, backend: Backend) -> np.ndarray:
        """``phi(q_i).phi(k_j) = 1 + s/r + s^2/(2 r^2)`` with ``s = q_i.k_j`` and ``r = sqrt(d')`` (``r = 1``
        when ``scale=False``)."""
        s = q @ _swap(k)  # (..., N, N)
        if self.scale:
            r = backend.sqrt(int(self.input_dim), "TaylorMap sqrt(input_dim)")
            inv_r = backend.scalar(1) / r
            half_inv_r2 = backend.scalar(Fraction(1, 2 * int(self.input_dim)))
        else:
            inv_r, half_inv_r2 = backend.scalar(1), backend.scalar(Fraction(1, 2))
        if isinstance(backend, Float64Backend):
            return 1.0 + s * inv_r + (s * s) * half_inv_r2
        one = backend.scalar(1)
        lin = s * inv_r
        return (s * s) * half_inv_r2 + lin + one

    def degree(self) -> int:
        return 2


__all__ = ["LAYOUTS", "IdentityMap", "TaylorMap"]
