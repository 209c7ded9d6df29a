"""Degrees (exactly 2^L for generic BaseConv stacks) and the resource analysis."""

from __future__ import annotations

import numpy as np
import pytest

from mqarkit.polynomials import (
    BaseConv,
    CausalConv,
    Layer,
    Linear,
    LinearAttention,
    Model,
    SoftmaxAttention,
    Stream,
    TaylorMap,
    UnnormalisedAttention,
    analyse,
    output_degree,
)


def _generic_baseconv(rng: np.random.Generator, n: int, d: int) -> BaseConv:
    def nz(shape):  # nonzero random integers
        return rng.integers(1, 4, shape) * rng.choice([-1, 1], shape)

    return BaseConv(nz((d, d)), nz((n, d)), nz((n, d)), nz((n, d)))


@pytest.mark.symbolic
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_generic_baseconv_degree_is_exactly_2_to_the_L(num_layers: int) -> None:
    rng = np.random.default_rng(num_layers)
    n, d = 3, 2
    model = Model.sequential([_generic_baseconv(rng, n, d) for _ in range(num_layers)], d)
    degrees = output_degree(model, n)
    assert (degrees == 2**num_layers).all(), degrees
    assert analyse(model, n).degree_bound == 2**num_layers


def test_output_degree_of_zero_and_causal_structure() -> None:
    # the first output of a strict attention is the zero polynomial: degree -1
    eye = np.eye(2, dtype=np.int64)
    deg = output_degree(UnnormalisedAttention(eye, eye, eye, mask="strict"), 3)
    assert deg[0].tolist() == [-1, -1] and (deg[1:] == 3).all()


def test_analysis_counts() -> None:
    n, d, k = 16, 4, 3
    stream = Stream.of(("x", d), ("y", 2))
    conv = CausalConv(np.ones((k, d)))
    bc = BaseConv(np.ones((d, d)), np.ones((n, d)), np.ones((n, d)), np.ones(d), cyclic=True)
    att = SoftmaxAttention(np.ones((d, 2)), np.ones((d, 2)), np.ones((d, 3)), 1.0, "window", 5, wo=np.ones((3, d)))
    lin_att = LinearAttention(np.ones((d, 2)), np.ones((d, 2)), np.ones((d, 2)), TaylorMap(2, "compressed"))
    proj = Linear(np.ones((d, 2)), np.ones(2))
    model = Model(
        stream,
        (
            Layer(conv, ("x",), ("x",)),
            Layer(bc, ("x",), ("x",)),
            Layer(att, ("x",), ("x",)),
            Layer(lin_att, ("x",), ("y",)),
            Layer(proj, ("x",), ("y",)),
        ),
    )
    a = analyse(model, n)
    assert a.layers == 4 and a.width == d + 2
    assert a.parameters == k * d + (d * d + n * d + n * d + d) + (2 * d * 2 + d * 3 + 3 * d) + 3 * d * 2 + (2 * d + 2)
    feature = 1 + 2 + 3
    assert a.state_numbers == (k - 1) * d + (n - 1) * d + (2 + 3) * 5 + feature * 2 + feature
    assert a.degree_bound is None
    assert a.flops > 0
    poly = Model.sequential([conv, bc, Linear(np.ones((d, d)))], d)
    assert analyse(poly, n).degree_bound == 2
    assert analyse(poly, n).flops == conv.flops(n) + bc.flops(n) + 2 * n * d * d
