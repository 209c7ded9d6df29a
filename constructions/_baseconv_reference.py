"""A naive, loop-based BaseConv forward pass: the independent oracle the BaseConv constructions are tested against.

It follows theory.md §2.1 to the letter and shares no code with ``mqarkit.polynomials``:

    y[i, q] = (sum_p u[i, p] W[p, q] + b1[i, q]) * (sum_{k <= i, k < K} h[k, q] u[i - k, q] + b2[i, q])

(cyclic: ``u[(i - k) mod N, q]`` over every tap ``k < K``). Entries may be floats, ``Fraction`` or sympy expressions
(object arrays): only ``+`` and ``*`` are used, so the arithmetic is whatever the entries' type does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ConvWeights:
    """The weights of one BaseConv layer on a width-``d`` stream of length ``N``.

    weight (d, d); filters (K, d); bias_linear / bias_conv (N, d) or (d,) or None; cyclic: circular convolution."""

    weight: np.ndarray
    filters: np.ndarray
    bias_linear: np.ndarray | None
    bias_conv: np.ndarray | None
    cyclic: bool = False

    @property
    def width(self) -> int:
        return int(self.weight.shape[0])


def _bias_at(bias: np.ndarray | None, i: int, q: int) -> object:
    if bias is None:
        return 0
    return bias[q] if bias.ndim == 1 else bias[i, q]


def reference_forward(u: np.ndarray, layer: ConvWeights) -> np.ndarray:
    """One BaseConv layer, by loops: ``u`` (N, d) -> (N, d) object array."""
    n, d = u.shape
    if layer.weight.shape != (d, d):
        raise ValueError(f"weight: shape {layer.weight.shape} must be (d, d) = {(d, d)}")
    taps = layer.filters.shape[0]
    out = np.empty((n, d), dtype=object)
    for i in range(n):
        for q in range(d):
            lin = _bias_at(layer.bias_linear, i, q)
            for p in range(d):
                if layer.weight[p, q] != 0:
                    lin = lin + u[i, p] * layer.weight[p, q]
            conv = _bias_at(layer.bias_conv, i, q)
            for k in range(taps):
                if layer.filters[k, q] == 0:
                    continue
                if layer.cyclic:
                    conv = conv + layer.filters[k, q] * u[(i - k) % n, q]
                elif k <= i:
                    conv = conv + layer.filters[k, q] * u[i - k, q]
            out[i, q] = lin * conv
    return out


def reference_stack(u: np.ndarray, layers: list[ConvWeights]) -> np.ndarray:
    """A sequential stack (no residual): ``u`` (N, d) -> (N, d) object array."""
    out = np.asarray(u, dtype=object)
    for layer in layers:
        out = reference_forward(out, layer)
    return out
