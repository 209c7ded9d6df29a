"""Feature maps (symbolic kernel identities, widths), attention masks, linear attention forms, readout."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import sympy

from mqarkit.polynomials import (
    ArgmaxReadout,
    IdentityMap,
    LinearAttention,
    NotExactError,
    SoftmaxAttention,
    TaylorMap,
    UnnormalisedAttention,
    evaluate,
    linear_attention_recurrent,
)
from mqarkit.polynomials.backends import Float64Backend
from mqarkit.tolerances import assert_close


@pytest.mark.symbolic
@pytest.mark.parametrize("layout", ["full", "compressed"])
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_taylor_kernel_identity(layout: str, dim: int) -> None:
    q = np.array(sympy.symbols(f"q0:{dim}"), dtype=object)
    k = np.array(sympy.symbols(f"k0:{dim}"), dtype=object)
    s = sum(q * k)
    scaled = TaylorMap(dim, layout)
    lhs = sympy.expand(sum(scaled.apply(q) * scaled.apply(k)))
    assert lhs == sympy.expand(1 + s / sympy.sqrt(dim) + s**2 / (2 * dim))
    plain = TaylorMap(dim, layout, scale=False)
    assert sympy.expand(sum(plain.apply(q) * plain.apply(k))) == sympy.expand(1 + s + s**2 / 2)
    width = 1 + dim + (dim * dim if layout == "full" else dim * (dim + 1) // 2)
    assert scaled.width == width == scaled.apply(q).shape[-1]


def test_taylor_widths_of_based() -> None:
    assert TaylorMap(16, "full").width == 273 and TaylorMap(16, "compressed").width == 153


@pytest.mark.parametrize("layout", ["full", "compressed"])
def test_features_match_kernel_in_float64(layout: str) -> None:
    rng = np.random.default_rng(0)
    fmap = TaylorMap(5, layout)
    q, k = rng.normal(size=(7, 5)), rng.normal(size=(6, 5))
    assert_close(fmap.apply(q) @ fmap.apply(k).T, fmap.kernel(q, k, Float64Backend()))


@pytest.mark.parametrize("normalise", [True, False])
@pytest.mark.parametrize("fmap", [IdentityMap(), TaylorMap(3, "full"), TaylorMap(3, "compressed", scale=False)])
def test_linear_attention_quadratic_equals_recurrent(fmap, normalise: bool) -> None:
    rng = np.random.default_rng(1)
    d, n = 4, 9
    op = LinearAttention(
        rng.normal(size=(d, 3)),
        rng.normal(size=(d, 3)),
        rng.normal(size=(d, 2)),
        fmap,
        normalise,
        0.0,
        rng.normal(size=(2, 5)),
    )
    if normalise and isinstance(fmap, IdentityMap):
        op = LinearAttention(np.abs(op.wq), np.abs(op.wk), op.wv, fmap, True, 1e-3, op.wo)
    x = np.abs(rng.normal(size=(2, n, d)))
    assert_close(evaluate(op, x), linear_attention_recurrent(op, x))


def test_linear_attention_exact_normalised_and_symbolic_refusal() -> None:
    op = LinearAttention(
        np.eye(2, dtype=np.int64),
        np.eye(2, dtype=np.int64),
        np.eye(2, dtype=np.int64),
        TaylorMap(2, "full", scale=False),
    )
    u = np.array([[1, 0], [0, 2], [1, 1]])
    exact = evaluate(op, u, backend="exact")
    # position 1 by hand: kernel 1 + s + s^2/2 with s = q1.k0 = 0 and q1.k1 = 4
    w0, w1 = Fraction(1), Fraction(1 + 4 + 8)
    assert exact[1].tolist() == [w0 * 1 / (w0 + w1), w1 * 2 / (w0 + w1)]
    assert_close(evaluate(op, u.astype(float)), np.array([[float(v) for v in r] for r in exact]))
    with pytest.raises(NotExactError, match="rational function"):
        evaluate(op, u, backend="symbolic")
    with pytest.raises(NotExactError, match="irrational"):
        evaluate(LinearAttention(np.eye(2), np.eye(2), np.eye(2), TaylorMap(2)), u, backend="exact")


def _reference_softmax(q, k, v, beta, allowed):
    out = np.zeros((q.shape[0], v.shape[1]))
    for i in range(q.shape[0]):
        js = [j for j in range(q.shape[0]) if allowed(i, j)]
        if js:
            logits = np.array([beta * q[i] @ k[j] for j in js])
            w = np.exp(logits - logits.max())
            out[i] = (w / w.sum()) @ v[js]
    return out


@pytest.mark.parametrize(
    ("mask", "window", "allowed"),
    [
        ("causal", None, lambda i, j: j <= i),
        ("strict", None, lambda i, j: j < i),
        ("window", 3, lambda i, j: i - 3 < j <= i),
        ("window", 1, lambda i, j: j == i),
    ],
)
def test_attention_masks(mask: str, window, allowed) -> None:
    rng = np.random.default_rng(2)
    n, d = 7, 3
    wq, wk, wv = (rng.normal(size=(d, 2)) for _ in range(3))
    u = rng.normal(size=(n, d))
    q, k, v = u @ wq, u @ wk, u @ wv
    soft = evaluate(SoftmaxAttention(wq, wk, wv, 0.7, mask, window), u)
    assert_close(soft, _reference_softmax(q, k, v, 0.7, allowed))
    plain = evaluate(UnnormalisedAttention(wq, wk, wv, mask, window), u)
    expected = np.array([sum(((q[i] @ k[j]) * v[j] for j in range(n) if allowed(i, j)), np.zeros(2)) for i in range(n)])
    assert_close(plain, expected)
    if mask == "strict":
        assert (soft[0] == 0).all() and (plain[0] == 0).all()


def test_positional_bias_and_readout() -> None:
    n = 4
    zero = np.zeros((2, 1))
    v = np.eye(2)
    bias = np.full((n, n), -50.0)
    np.fill_diagonal(bias, 0.0)
    op = SoftmaxAttention(zero, zero, v, 1.0, positional_bias=bias)
    u = np.arange(2 * n, dtype=float).reshape(n, 2)
    # off-diagonal weights are about e^-50 relative: below float64 resolution, so the bias selects the diagonal
    assert_close(evaluate(op, u), u, context="the positional bias selects the diagonal")
    readout = ArgmaxReadout(np.array([[1, 0], [0, 1], [1, 1]]), np.array([10, 20, 30]))
    x = np.array([[2.0, -1.0], [0.1, 0.2], [1.0, 1.0]])
    assert readout.apply(x).tolist() == [10, 30, 30]
    assert_close(readout.scores(x), x @ np.array([[1, 0], [0, 1], [1, 1]]).T)
    exact = evaluate(readout, np.array([[1, 0], [0, 1]]), backend="exact")
    assert exact.tolist() == [10, 20]
