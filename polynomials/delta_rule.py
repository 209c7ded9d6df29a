"""The delta rule (DeltaNet's recurrence): a fast-weight memory that overwrites instead of adding.

With ``q = u wq``, ``k = u wk`` (``(N, dk)``), ``v = u wv`` (``(N, dv)``) and a constant write strength ``beta``::

    S_0 = 0                                                         (dk, dv)
    S_i = S_{i-1} + beta k_i^T (v_i - k_i S_{i-1})                  (write: move the value read at k_i toward v_i)
    y_i = q_i S_i                                                   (read after the write, as fla's kernels do)

then ``y <- y wo`` when given. With ``beta = 1`` and a unit key, ``k_i S_i = v_i``: the write replaces what ``k_i``
read. The recurrence uses only sums and products, so every output entry is a polynomial in ``u`` and the op runs in
every backend (float64, exact over Q, symbolic); its degree grows with ``N`` (``S_i`` has degree ``2i + 1`` in the
input entries), so :meth:`DeltaRule.degree` reports ``None`` (no bound independent of ``N``).

This is fla's ``DeltaNet`` recurrence without its learned, input-dependent ``beta`` (a sigmoid) and without its
in-kernel L2 normalisation of ``q`` and ``k`` (the identity on unit keys). State: ``S``, ``dk * dv`` numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .attention import QKVWidths, _set_projections
from .backends import Backend
from .op_base import Op, check_input, param_count
from .weights import as_scalar


@dataclass(frozen=True, eq=False)
class DeltaRule(QKVWidths, Op):
    wq: np.ndarray  # (d, dk)
    wk: np.ndarray  # (d, dk)
    wv: np.ndarray  # (d, dv)
    beta: int | float | Fraction = 1
    wo: np.ndarray | None = None  # (dv, d_out)

    mixes_sequence = True

    def __post_init__(self) -> None:
        _set_projections(self, "DeltaRule")
        as_scalar(self.beta, op="DeltaRule", field="beta")
        if not 0 < self.beta <= 1:
            raise ValueError(f"DeltaRule.beta={self.beta!r}: must lie in (0, 1]")

    @property
    def num_parameters(self) -> int:
        return param_count(self.wq, self.wk, self.wv, self.wo)

    def apply(self, x: np.ndarray, backend: Backend) -> np.ndarray:
        check_input(self, x)
        self.check(x.shape[-2])
        q, k, v = x @ backend.weight(self, "wq"), x @ backend.weight(self, "wk"), x @ backend.weight(self, "wv")
        beta = backend.scalar(self.beta, "DeltaRule.beta")
        lead, n = x.shape[:-2], x.shape[-2]
        state = backend.zeros((*lead, self.key_width, self.value_width))
        out = []
        for i in range(n):
            ki, vi = k[..., i, :], v[..., i, :]  # (..., dk), (..., dv)
            read = np.einsum("...k,...kv->...v", ki, state) if backend.name == "float64" else _vec_mat(ki, state)
            state = state + beta * ki[..., :, None] * (vi - read)[..., None, :]
            qi = q[..., i, :]
            out.append(np.einsum("...k,...kv->...v", qi, state) if backend.name == "float64" else _vec_mat(qi, state))
        y = np.stack(out, axis=-2)
        if self.wo is not None:
            y = y @ backend.weight(self, "wo")
        return y

    def degree(self, input_degree: int) -> int | None:
        return None  # polynomial, but of degree growing with N (module docstring)

    def state_numbers(self, seq_len: int) -> int:
        return self.key_width * self.value_width

    def flops(self, seq_len: int) -> int:
        n, d, dk, dv = seq_len, self.in_width, self.key_width, self.value_width
        # projections; per step: read k S (2 dk dv), write (3 dk dv: difference, outer product, add), read q S
        out = 2 * n * d * (2 * dk + dv) + n * 7 * dk * dv
        if self.wo is not None:
            out += 2 * n * dv * self.out_width
        return out


def _vec_mat(vec: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """``vec (..., dk) @ mat (..., dk, dv) -> (..., dv)`` for object arrays (einsum needs numeric dtypes)."""
    return (vec[..., :, None] * mat).sum(axis=-2)
