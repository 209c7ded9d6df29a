"""BaseConv (theory.md §2.1): ``y = (u W + b1) ⊙ (h ∗ u + b2)`` with position-dependent biases.

Shapes: ``u: (N, d)``, ``W: (d, d_out)`` (``d_out = d`` in the paper), ``h: (k, d_out)`` with ``k <= N``,
``b1, b2: (N, d_out)`` or ``(d_out,)``. The convolution is depthwise: channel ``q`` of the conv branch convolves input
channel ``q`` only, so it needs ``d_out == d`` whenever filters are given (always, here: the conv branch reads ``u``).

Degree: each branch is affine in ``u``, so one layer maps degree-``e`` inputs to degree ``<= 2e``; ``L`` layers give
``<= 2^L`` (theory.md §2.2). The product is exact in every backend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backends import Backend
from .conv import check_filter, conv_state_numbers, depthwise_conv
from .op_base import Op, WeightWidths, as_bias, bias_seq_check, check_input, param_count
from .weights import as_weight


@dataclass(frozen=True, eq=False)
class BaseConv(WeightWidths, Op):
    weight: np.ndarray  # (d, d)
    filters: np.ndarray  # (k, d)
    bias_linear: np.ndarray | None = None  # (N, d) or (d,)
    bias_conv: np.ndarray | None = None  # (N, d) or (d,)
    cyclic: bool = False

    mixes_sequence = True

    def __post_init__(self) -> None:
        w = as_weight(self.weight, op="BaseConv", field="weight", ndim=2)
        h = as_weight(self.filters, op="BaseConv", field="filters", ndim=2)
        if w.shape[0] != w.shape[1]:
            raise ValueError(f"BaseConv.weight: shape {w.shape} must be square (d, d): the conv branch is depthwise")
        if h.shape[0] < 1 or h.shape[1] != w.shape[1]:
            raise ValueError(f"BaseConv.filters: shape {h.shape} must be (k >= 1, d={w.shape[1]})")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "filters", h)
        for field in ("bias_linear", "bias_conv"):
            object.__setattr__(self, field, as_bias("BaseConv", field, getattr(self, field), w.shape[1]))
        if not isinstance(self.cyclic, (bool, np.bool_)):
            raise ValueError(f"BaseConv.cyclic={self.cyclic!r}: must be a bool")

    @property
    def kernel_size(self) -> int:
        return self.filters.shape[0]

    @property
    def num_parameters(self) -> int:
        return param_count(self.weight, self.filters, self.bias_linear, self.bias_conv)

    def check(self, seq_len: int) -> None:
        super().check(seq_len)
        check_filter("BaseConv", self.filters, seq_len)
        bias_seq_check("BaseConv", "bias_linear", self.bias_linear, seq_len)
        bias_seq_check("BaseConv", "bias_conv", self.bias_conv, seq_len)

    def apply(self, x: np.ndarray, backend: Backend) -> np.ndarray:
        check_input(self, x)
        self.check(x.shape[-2])
        lin = x @ backend.weight(self, "weight")  # (..., N, d), a fresh array
        conv = depthwise_conv(self, "filters", x, backend, cyclic=bool(self.cyclic))  # (..., N, d), fresh
        if backend.name == "float64":  # in place: no extra (B, N, d) temporaries on the fast path
            if self.bias_linear is not None:
                lin += backend.weight(self, "bias_linear")
            if self.bias_conv is not None:
                conv += backend.weight(self, "bias_conv")
            lin *= conv
            return lin
        if self.bias_linear is not None:
            lin = lin + backend.weight(self, "bias_linear")
        if self.bias_conv is not None:
            conv = conv + backend.weight(self, "bias_conv")
        return lin * conv

    def degree(self, input_degree: int) -> int:
        return 2 * input_degree

    def state_numbers(self, seq_len: int) -> int:
        return conv_state_numbers(self.kernel_size, self.in_width, seq_len, bool(self.cyclic))

    def flops(self, seq_len: int) -> int:
        d = self.in_width
        biases = sum(seq_len * d for b in (self.bias_linear, self.bias_conv) if b is not None)
        return 2 * seq_len * d * d + 2 * seq_len * self.kernel_size * d + biases + seq_len * d
