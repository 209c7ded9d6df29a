"""``Linear``: a per-position projection ``y = u W + b`` (channel mixing only; no sequence mixing)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backends import Backend
from .op_base import Op, WeightWidths, as_bias, bias_seq_check, check_input, param_count
from .weights import as_weight


@dataclass(frozen=True, eq=False)
class Linear(WeightWidths, Op):
    weight: np.ndarray  # (d_in, d_out)
    bias: np.ndarray | None = None  # (d_out,) or (N, d_out), position-dependent

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", as_weight(self.weight, op="Linear", field="weight", ndim=2))
        object.__setattr__(self, "bias", as_bias("Linear", "bias", self.bias, self.out_width))

    @property
    def num_parameters(self) -> int:
        return param_count(self.weight, self.bias)

    def check(self, seq_len: int) -> None:
        super().check(seq_len)
        bias_seq_check("Linear", "bias", self.bias, seq_len)

    def apply(self, x: np.ndarray, backend: Backend) -> np.ndarray:
        check_input(self, x)
        y = x @ backend.weight(self, "weight")
        if self.bias is not None:
            y = y + backend.weight(self, "bias")
        return y

    def degree(self, input_degree: int) -> int:
        return input_degree

    def flops(self, seq_len: int) -> int:
        return 2 * seq_len * self.in_width * self.out_width + (seq_len * self.out_width if self.bias is not None else 0)
