"""Causal linear attention with a feature map (theory.md §2.3).

With ``q = u wq``, ``k = u wk`` (both ``(N, dk)``), ``v = u wv`` (``(N, dv)``) and a feature map ``phi`` of width F:

    S_i = sum_{j <= i} phi(k_j)^T v_j   (F, dv),      z_i = sum_{j <= i} phi(k_j)^T   (F,)
    y_i = phi(q_i) S_i / (phi(q_i) z_i + eps)         (normalise=True)
    y_i = phi(q_i) S_i                                (normalise=False)

then ``y <- y wo`` when given. Since ``phi(q_i) S_i = sum_{j<=i} (phi(q_i).phi(k_j)) v_j``, the op is evaluated in its
quadratic ("attention") form through the map's kernel ``K[i, j] = phi(q_i).phi(k_j)`` masked to ``j <= i``; the
recurrent form (prefix sums of ``S`` and ``z``) is :func:`linear_attention_recurrent`, kept as the reference the tests
compare against.

Backends: ``normalise=False`` is a polynomial (degree ``2*deg(phi) + 1`` in ``u``) and runs everywhere; the normalised
form is a rational function: float64 and exact (Fractions; a vanishing denominator raises) only. Under the symbolic
backend it raises :class:`NotExactError` (the outputs are not polynomials).

State (recurrent form): ``F * dv`` numbers for ``S`` plus ``F`` for ``z`` when normalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .attention import QKVWidths, _set_projections
from .backends import Backend
from .feature_maps import IdentityMap, TaylorMap
from .masks import allowed
from .op_base import Op, check_input, param_count
from .weights import NotExactError, as_scalar, to_float64


@dataclass(frozen=True, eq=False)
class LinearAttention(QKVWidths, Op):
    wq: np.ndarray  # (d, dk)
    wk: np.ndarray  # (d, dk)
    wv: np.ndarray  # (d, dv)
    feature_map: IdentityMap | TaylorMap
    normalise: bool = True
    eps: float = 0.0
    wo: np.ndarray | None = None  # (dv, d_out)

    mixes_sequence = True

    def __post_init__(self) -> None:
        name = "LinearAttention"
        _set_projections(self, name)
        if not isinstance(self.feature_map, (IdentityMap, TaylorMap)):
            raise ValueError(f"LinearAttention.feature_map={self.feature_map!r}: must be IdentityMap or TaylorMap")
        self.feature_map.check_input_dim(self.wq.shape[1])
        if not isinstance(self.normalise, (bool, np.bool_)):
            raise ValueError(f"LinearAttention.normalise={self.normalise!r}: must be a bool")
        as_scalar(self.eps, op=name, field="eps")
        if self.eps < 0:
            raise ValueError(f"LinearAttention.eps={self.eps!r}: must be >= 0")

    @property
    def feature_width(self) -> int:
        return self.feature_map.feature_width(self.key_width)

    @property
    def num_parameters(self) -> int:
        return param_count(self.wq, self.wk, self.wv, self.wo)

    def _qkv(self, x: np.ndarray, backend: Backend) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        check_input(self, x)
        self.check(x.shape[-2])
        return x @ backend.weight(self, "wq"), x @ backend.weight(self, "wk"), x @ backend.weight(self, "wv")

    def _normalised(self, num: np.ndarray, den: np.ndarray, backend: Backend) -> np.ndarray:
        if backend.name == "symbolic":
            raise NotExactError(
                "LinearAttention(normalise=True): the output is a rational function, not a polynomial; use "
                "backend='exact' on concrete inputs or normalise=False"
            )
        den = den + backend.scalar(self.eps, "LinearAttention.eps")  # (..., N, 1)
        if backend.name == "exact" and any(x == 0 for x in den.ravel()):
            raise ValueError("LinearAttention: the normaliser phi(q_i).z_i + eps vanishes at some position")
        return num / den

    def apply(self, x: np.ndarray, backend: Backend) -> np.ndarray:
        q, k, v = self._qkv(x, backend)
        n = x.shape[-2]
        kern = self.feature_map.kernel(q, k, backend)  # (..., N, N)
        ok = backend.derived(self, f"mask-{n}", lambda: allowed("causal", n))
        kern = kern * ok if backend.name == "float64" else np.where(ok, kern, backend.zeros(kern.shape))
        y = kern @ v
        if self.normalise:
            y = self._normalised(y, kern.sum(axis=-1, keepdims=True), backend)
        if self.wo is not None:
            y = y @ backend.weight(self, "wo")
        return y

    def degree(self, input_degree: int) -> int | None:
        if self.normalise:
            return None
        return (2 * self.feature_map.degree() + 1) * input_degree

    def state_numbers(self, seq_len: int) -> int:
        f = self.feature_width
        return f * self.value_width + (f if self.normalise else 0)

    def flops(self, seq_len: int) -> int:
        n, d, dk, dv, f = seq_len, self.in_width, self.key_width, self.value_width, self.feature_width
        # recurrent form: features of q and k, S update F*dv MACs, readout F*dv MACs, z update + readout, division
        out = 2 * n * d * (2 * dk + dv) + 2 * n * f * dv * 2
        if self.normalise:
            out += 2 * n * f + n * dv
        if self.wo is not None:
            out += 2 * n * dv * self.out_width
        return out


def linear_attention_recurrent(op: LinearAttention, x: np.ndarray) -> np.ndarray:
    """Reference: the recurrent form in float64 with explicit features and prefix sums. ``x: (..., N, d)``."""
    x = np.asarray(x, dtype=np.float64)
    wq, wk, wv = (to_float64(w) for w in (op.wq, op.wk, op.wv))
    fq = op.feature_map.apply(x @ wq)  # (..., N, F)
    fk = op.feature_map.apply(x @ wk)
    v = x @ wv
    s = np.cumsum(fk[..., :, :, None] * v[..., :, None, :], axis=-3)  # (..., N, F, dv)
    y = np.einsum("...nf,...nfv->...nv", fq, s)
    if op.normalise:
        z = np.cumsum(fk, axis=-2)  # (..., N, F)
        y = y / (np.einsum("...nf,...nf->...n", fq, z)[..., None] + float(op.eps))
    if op.wo is not None:
        y = y @ to_float64(op.wo)
    return y
