"""Hypothesis strategies of small ops and models with exact weights (shared by the tests of this folder)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import strategies as st

from mqarkit.polynomials import (
    BaseConv,
    CausalConv,
    CyclicConv,
    IdentityMap,
    Linear,
    LinearAttention,
    Model,
    TaylorMap,
    UnnormalisedAttention,
)

# dyadic rationals: exact in float64 too, so float64 results of small models are exact and compare tightly
NUMBERS = st.sampled_from([Fraction(v) for v in (-2, -1, 0, 1, 2)] + [Fraction(1, 2), Fraction(-3, 4)])


def arrays(draw, shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        out[idx] = draw(NUMBERS)
    return out


@st.composite
def ops(draw, n: int, d: int, polynomial_only: bool = True):
    kind = draw(st.sampled_from(["linear", "causal", "cyclic", "baseconv", "attention", "linear_attention"]))
    if kind == "linear":
        bias = draw(st.sampled_from([None, (d,), (n, d)]))
        return Linear(arrays(draw, (d, d)), None if bias is None else arrays(draw, bias))
    if kind in ("causal", "cyclic"):
        k = draw(st.integers(1, n))
        return (CausalConv if kind == "causal" else CyclicConv)(arrays(draw, (k, d)))
    if kind == "baseconv":
        k = draw(st.integers(1, n))
        b1 = draw(st.sampled_from([None, (d,), (n, d)]))
        b2 = draw(st.sampled_from([None, (d,), (n, d)]))
        return BaseConv(
            arrays(draw, (d, d)),
            arrays(draw, (k, d)),
            None if b1 is None else arrays(draw, b1),
            None if b2 is None else arrays(draw, b2),
            cyclic=draw(st.booleans()),
        )
    dk = draw(st.integers(1, 3))
    dv = draw(st.integers(1, 3))
    wq, wk, wv = arrays(draw, (d, dk)), arrays(draw, (d, dk)), arrays(draw, (d, dv))
    wo = arrays(draw, (dv, d))
    if kind == "attention":
        mask = draw(st.sampled_from(["causal", "strict", "window"]))
        window = draw(st.integers(1, n + 1)) if mask == "window" else None
        return UnnormalisedAttention(wq, wk, wv, mask, window, wo)
    # sqrt(dk) is rational only for dk = 1 (dk <= 3 here), so scale=True appears with dk = 1
    fmap = draw(
        st.sampled_from([IdentityMap(), TaylorMap(dk, "full", scale=False), TaylorMap(dk, "compressed", scale=dk == 1)])
    )
    return LinearAttention(wq, wk, wv, fmap, normalise=False, wo=wo)


@st.composite
def models(draw, max_layers: int = 2):
    n = draw(st.integers(1, 5))
    d = draw(st.integers(1, 3))
    layers = draw(st.lists(ops(n, d), min_size=1, max_size=max_layers))
    return Model.sequential(layers, d), n


@st.composite
def inputs(draw, n: int, d: int) -> np.ndarray:
    return arrays(draw, (n, d))
