"""Conversion of BaseConv weights (:class:`ConvWeights`) into operator-IR ops and models (``mqarkit.polynomials``).

Weights are handed over exactly: integer-valued arrays as int64, others as float64. Every entry of the BaseConv
constructions is a dyadic rational (0, ±1, 1/2), which float64 holds exactly, and the IR's exact backend reads a float
at its exact binary value, so nothing is rounded under any backend (and large dense weights stay compact).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mqarkit.constructions._baseconv_reference import ConvWeights


def exact_array(arr: np.ndarray | None) -> np.ndarray | None:
    """float64 -> int64 when every entry is an integer, else float64 (dyadic entries only: checked)."""
    if arr is None:
        return None
    arr = np.asarray(arr)
    if arr.dtype == object:
        return arr
    if np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    scaled = arr * 2.0**20
    if not np.all(scaled == np.round(scaled)):
        raise ValueError("weights: entries must be dyadic rationals with denominator <= 2^20 (held exactly)")
    return arr.astype(np.float64)


def as_op(w: ConvWeights) -> Any:
    """One IR ``BaseConv`` op with these weights."""
    from mqarkit.polynomials import BaseConv

    return BaseConv(
        weight=exact_array(w.weight),
        filters=exact_array(w.filters),
        bias_linear=exact_array(w.bias_linear),
        bias_conv=exact_array(w.bias_conv),
        cyclic=w.cyclic,
    )


def as_model(layers: list[ConvWeights]) -> Any:
    """A paper-style sequential IR model (one block ``"u"``, no residual) of these layers."""
    from mqarkit.polynomials import Model

    if not layers:
        raise ValueError("layers: needs at least one layer")
    width = layers[0].width
    for k, layer in enumerate(layers):
        if layer.width != width:
            raise ValueError(f"layers[{k}]: width {layer.width} differs from layers[0] width {width}")
    return Model.sequential([as_op(layer) for layer in layers], width)
