"""Attention with and without softmax.

Shapes: ``u: (..., N, d)``, ``wq, wk: (d, dk)``, ``wv: (d, dv)``, optional ``wo: (dv, d_out)``; the mask is one of
:mod:`.masks`. With ``q = u wq``, ``k = u wk``, ``v = u wv`` and ``A(i)`` the keys query ``i`` may read:

- ``SoftmaxAttention``:       ``y_i = sum_{j in A(i)} softmax_j(beta q_i.k_j + P[i, j]) v_j`` (0 if ``A(i)`` is empty)
- ``UnnormalisedAttention``:  ``y_i = sum_{j in A(i)} (q_i.k_j) v_j``

then ``y <- y wo`` when ``wo`` is given. Softmax is transcendental: it runs in float64 only and raises
:class:`NotExactError` under the exact and symbolic backends (we do not keep ``exp`` symbolic). The unnormalised form
is a polynomial of degree 3 in ``u`` and runs in every backend.

State (recurrent form): the KV cache, ``(dk + dv) * N`` numbers (window: ``(dk + dv) * min(w, N)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backends import Backend
from .masks import allowed, allowed_pairs, check_mask, visible_keys
from .op_base import Op, check_input, param_count
from .weights import NotExactError, as_scalar, as_weight


def _set_projections(op: object, op_name: str) -> None:
    """Validate ``op``'s ``wq, wk (d, dk)``, ``wv (d, dv)`` and optional ``wo (dv, d_out)``; store them back on the
    (frozen) op as validated weights."""
    wq = as_weight(op.wq, op=op_name, field="wq", ndim=2)  # type: ignore[attr-defined]
    wk = as_weight(op.wk, op=op_name, field="wk", ndim=2)  # type: ignore[attr-defined]
    wv = as_weight(op.wv, op=op_name, field="wv", ndim=2)  # type: ignore[attr-defined]
    wo = op.wo  # type: ignore[attr-defined]
    if wk.shape != wq.shape:
        raise ValueError(f"{op_name}.wk: shape {wk.shape} must equal wq's shape {wq.shape} (d, dk)")
    if wv.shape[0] != wq.shape[0]:
        raise ValueError(f"{op_name}.wv: shape {wv.shape} must have d={wq.shape[0]} rows like wq")
    if wo is not None:
        wo = as_weight(wo, op=op_name, field="wo", ndim=2)
        if wo.shape[0] != wv.shape[1]:
            raise ValueError(f"{op_name}.wo: shape {wo.shape} must have dv={wv.shape[1]} rows")
    for field, value in (("wq", wq), ("wk", wk), ("wv", wv), ("wo", wo)):
        object.__setattr__(op, field, value)


def _swap(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


class QKVWidths:
    """Widths read off the ``wq (d, dk)``, ``wv (d, dv)`` and optional ``wo (dv, d_out)`` projections of an attention
    op (softmax, unnormalised or linear)."""

    @property
    def in_width(self) -> int:
        return self.wq.shape[0]

    @property
    def key_width(self) -> int:
        return self.wq.shape[1]

    @property
    def value_width(self) -> int:
        return self.wv.shape[1]

    @property
    def out_width(self) -> int:
        return self.wo.shape[1] if self.wo is not None else self.wv.shape[1]


class _AttentionBase(QKVWidths, Op):
    mixes_sequence = True

    def state_numbers(self, seq_len: int) -> int:
        return (self.key_width + self.value_width) * visible_keys(self.mask, seq_len, self.window)

    def _flops(self, seq_len: int, softmax: bool) -> int:
        n, d, dk, dv = seq_len, self.in_width, self.key_width, self.value_width
        pairs = allowed_pairs(self.mask, n, self.window)
        out = 2 * n * d * (2 * dk + dv) + 2 * pairs * dk + 2 * pairs * dv
        if softmax:
            out += pairs + n * dv
        if self.wo is not None:
            out += 2 * n * dv * self.out_width
        return out


@dataclass(frozen=True, eq=False)
class SoftmaxAttention(_AttentionBase):
    wq: np.ndarray  # (d, dk)
    wk: np.ndarray  # (d, dk)
    wv: np.ndarray  # (d, dv)
    beta: float
    mask: str = "causal"
    window: int | None = None
    positional_bias: np.ndarray | None = None  # (N, N) additive logit bias P
    wo: np.ndarray | None = None  # (dv, d_out)

    def __post_init__(self) -> None:
        name = "SoftmaxAttention"
        _set_projections(self, name)
        as_scalar(self.beta, op=name, field="beta")
        check_mask(name, self.mask, self.window)
        if self.positional_bias is not None:
            p = as_weight(self.positional_bias, op=name, field="positional_bias", ndim=2)
            if p.shape[0] != p.shape[1]:
                raise ValueError(f"{name}.positional_bias: shape {p.shape} must be (N, N)")
            object.__setattr__(self, "positional_bias", p)

    @property
    def num_parameters(self) -> int:
        return param_count(self.wq, self.wk, self.wv, self.wo, self.positional_bias)

    def check(self, seq_len: int) -> None:
        super().check(seq_len)
        p = self.positional_bias
        if p is not None and p.shape != (seq_len, seq_len):
            raise ValueError(
                f"SoftmaxAttention.positional_bias: shape {p.shape} must be (N, N) = ({seq_len}, {seq_len})"
            )

    def apply(self, x: np.ndarray, backend: Backend) -> np.ndarray:
        if backend.name != "float64":
            raise NotExactError(
                f"SoftmaxAttention: softmax is not exact (not a rational function); backend={backend.name!r} "
                "is not supported, use 'float64' (or UnnormalisedAttention for an exact lookup)"
            )
        check_input(self, x)
        n = x.shape[-2]
        self.check(n)
        q = x @ backend.weight(self, "wq")
        k = x @ backend.weight(self, "wk")
        v = x @ backend.weight(self, "wv")
        logits = float(self.beta) * (q @ _swap(k))  # (..., N, N)
        if self.positional_bias is not None:
            logits = logits + backend.weight(self, "positional_bias")
        ok = backend.derived(self, f"mask-{n}", lambda: allowed(self.mask, n, self.window))
        logits = np.where(ok, logits, -np.inf)
        row_max = logits.max(axis=-1, keepdims=True)
        row_max = np.where(np.isfinite(row_max), row_max, 0.0)  # rows with no allowed key
        weights = np.where(ok, np.exp(logits - row_max), 0.0)
        total = weights.sum(axis=-1, keepdims=True)
        weights = weights / np.where(total > 0, total, 1.0)  # an empty row stays 0
        y = weights @ v
        if self.wo is not None:
            y = y @ backend.weight(self, "wo")
        return y

    def degree(self, input_degree: int) -> None:
        return None

    def flops(self, seq_len: int) -> int:
        return self._flops(seq_len, softmax=True)


@dataclass(frozen=True, eq=False)
class UnnormalisedAttention(_AttentionBase):
    wq: np.ndarray  # (d, dk)
    wk: np.ndarray  # (d, dk)
    wv: np.ndarray  # (d, dv)
    mask: str = "causal"
    window: int | None = None
    wo: np.ndarray | None = None  # (dv, d_out)

    def __post_init__(self) -> None:
        name = "UnnormalisedAttention"
        _set_projections(self, name)
        check_mask(name, self.mask, self.window)

    @property
    def num_parameters(self) -> int:
        return param_count(self.wq, self.wk, self.wv, self.wo)

    def apply(self, x: np.ndarray, backend: Backend) -> np.ndarray:
        check_input(self, x)
        n = x.shape[-2]
        self.check(n)
        q = x @ backend.weight(self, "wq")
        k = x @ backend.weight(self, "wk")
        v = x @ backend.weight(self, "wv")
        scores = q @ _swap(k)  # (..., N, N)
        ok = backend.derived(self, f"mask-{n}", lambda: allowed(self.mask, n, self.window))
        if backend.name == "float64":
            scores = scores * ok
        else:
            scores = np.where(ok, scores, backend.zeros(scores.shape))
        y = scores @ v
        if self.wo is not None:
            y = y @ backend.weight(self, "wo")
        return y

    def degree(self, input_degree: int) -> int:
        return 3 * input_degree

    def flops(self, seq_len: int) -> int:
        return self._flops(seq_len, softmax=False)
