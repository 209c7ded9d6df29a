"""Linear attention as a BaseConv stack (constructions/baseconv_linear_attention.py): float64 and exact over Q
equality with LinearAttention and the loop; resources; bad input raises. The U7 point checks (symbolic identity,
broken stacks caught) are in tests/proofs_checks/test_simulation_points.py."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqarkit.constructions.baseconv_linear_attention import (
    LinearAttentionParams,
    claimed_resources,
    feature_plan,
    linear_attention_as_baseconv,
    linear_attention_direct,
    normalised_denominator_degree,
    random_params,
    reference_op,
    run_baseconv,
)
from mqarkit.polynomials import IdentityMap, TaylorMap, analyse, evaluate
from mqarkit.polynomials.linear_attention import linear_attention_recurrent
from mqarkit.tolerances import assert_close

MAPS = [("identity", "full"), ("taylor", "full"), ("taylor", "compressed")]


def _fraction_input(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    ints = rng.integers(-4, 5, size=(n, d))
    out = np.empty((n, d), dtype=object)
    for idx in np.ndindex(n, d):
        out[idx] = Fraction(int(ints[idx]), 3)
    return out


# --------------------------------------------------------------------------------------------------------------------
# equality with linear attention


@pytest.mark.parametrize("feature_map, layout", MAPS)
@pytest.mark.parametrize("n, d, dk, dv", [(1, 1, 1, 1), (6, 2, 3, 1), (9, 3, 2, 4), (40, 5, 3, 2), (130, 4, 2, 3)])
def test_float64_equals_linear_attention(feature_map: str, layout: str, n: int, d: int, dk: int, dv: int) -> None:
    # (130, ...): the all-ones filter is long enough for the IR's FFT path
    rng = np.random.default_rng(n * 1000 + d * 100 + dk * 10 + dv)
    params = random_params(rng, d, dk, dv)
    u = rng.normal(size=(3, n, d))
    model = linear_attention_as_baseconv(params, n, feature_map=feature_map, layout=layout)
    want = evaluate(reference_op(params, feature_map, layout), u)
    assert want.shape == (3, n, dv) and np.abs(want).max() > 1e-3  # not a vacuous comparison
    assert_close(run_baseconv(model, u, dv), want, context=f"{feature_map}-{layout} N={n}")
    assert_close(run_baseconv(model, u[2], dv), want[2])  # unbatched input
    # the IR op is itself checked against its recurrent form and the independent loop
    assert_close(linear_attention_recurrent(reference_op(params, feature_map, layout), u), want)
    assert_close(linear_attention_direct(u[0], params, feature_map), want[0])


@pytest.mark.parametrize("feature_map, layout", MAPS)
def test_exact_equals_linear_attention(feature_map: str, layout: str) -> None:
    rng = np.random.default_rng(7)
    params = random_params(rng, 3, 2, 2, exact=True)
    u = _fraction_input(rng, 5, 3)
    model = linear_attention_as_baseconv(params, 5, feature_map=feature_map, layout=layout)
    got = run_baseconv(model, u, 2, backend="exact")
    want = evaluate(reference_op(params, feature_map, layout), u, backend="exact")
    assert all(isinstance(x, Fraction) for x in got.ravel())
    assert (got == want).all() and (got == linear_attention_direct(u, params, feature_map)).all()
    assert any(x != 0 for x in want.ravel())


@given(
    n=st.integers(1, 5),
    d=st.integers(1, 3),
    dk=st.integers(1, 3),
    dv=st.integers(1, 3),
    which=st.sampled_from(MAPS),
    seed=st.integers(0, 2**16),
)
def test_exact_equality_property(n: int, d: int, dk: int, dv: int, which: tuple[str, str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    params = random_params(rng, d, dk, dv, exact=True)
    u = _fraction_input(rng, n, d)
    model = linear_attention_as_baseconv(params, n, feature_map=which[0], layout=which[1])
    got = run_baseconv(model, u, dv, backend="exact")
    assert (got == linear_attention_direct(u, params, which[0])).all()


# --------------------------------------------------------------------------------------------------------------------
# features and resources


def _monomial(x: np.ndarray, keys: tuple[int, ...]) -> Fraction:
    out = Fraction(1)
    for a in keys:
        out *= x[a]
    return out


@pytest.mark.parametrize("dk", [1, 2, 3, 5])
@pytest.mark.parametrize("layout", ["full", "compressed"])
def test_taylor_features_give_the_unscaled_kernel(dk: int, layout: str) -> None:
    plan = feature_plan("taylor", dk, layout)
    assert len(plan) == TaylorMap(dk, layout=layout, scale=False).width
    rng = np.random.default_rng(dk)
    q, k = (_fraction_input(rng, 1, dk)[0] for _ in range(2))
    kernel = sum(f.q_coef * _monomial(q, f.keys) * _monomial(k, f.keys) for f in plan)
    s = sum(q * k)
    assert kernel == 1 + s + s * s / 2


def test_identity_features() -> None:
    plan = feature_plan("identity", 4)
    assert len(plan) == IdentityMap().feature_width(4)
    assert [f.keys for f in plan] == [(0,), (1,), (2,), (3,)] and all(f.q_coef == 1 for f in plan)


def test_resources_by_hand() -> None:
    # identity, d = dk = dv = 2, N = 4: F = 2, w = 2*2 + 2 + 2 = 8, L = 4, taps 1+1+4+1 = 7
    r = claimed_resources(2, 2, 2, 4, "identity")
    assert (r.layers, r.width, r.state_numbers, r.degree_bound, r.degree) == (4, 8, 24, 16, 3)
    assert r.parameters == 4 * 64 + 8 * 7 + 2 * 4 * 8
    # Taylor full, d = 3, dk = 2, dv = 1, N = 5: F = 1 + 2 + 4 = 7, w = 7 + 7 + 3 = 17, L = 5, taps 1+1+1+5+1 = 9
    r = claimed_resources(3, 2, 1, 5, "taylor", "full")
    assert (r.layers, r.width, r.state_numbers, r.degree_bound, r.degree) == (5, 17, 68, 32, 5)
    assert r.parameters == 5 * 17 * 17 + 17 * 9 + 2 * 5 * 17
    assert claimed_resources(3, 2, 1, 5, "taylor", "compressed").width == 6 + 6 + 3  # F = 1 + 2 + 3


@pytest.mark.parametrize("feature_map, layout", MAPS)
def test_claimed_resources_equal_analyse(feature_map: str, layout: str) -> None:
    params = random_params(np.random.default_rng(0), 4, 3, 2)
    for n in (1, 7, 32):
        model = linear_attention_as_baseconv(params, n, feature_map=feature_map, layout=layout)
        got, claimed = analyse(model, n), claimed_resources(4, 3, 2, n, feature_map, layout)
        assert (got.layers, got.width, got.parameters, got.state_numbers, got.degree_bound) == (
            claimed.layers,
            claimed.width,
            claimed.parameters,
            claimed.state_numbers,
            claimed.degree_bound,
        )
        assert claimed.attention_state_numbers == reference_op(params, feature_map, layout).state_numbers(n)


def test_normalised_linear_attention_is_not_a_polynomial() -> None:
    assert normalised_denominator_degree("identity") == 1
    assert normalised_denominator_degree("taylor") == 4


# --------------------------------------------------------------------------------------------------------------------
# bad input


def test_bad_input_raises() -> None:
    params = random_params(np.random.default_rng(0), 2, 2, 2)
    with pytest.raises(ValueError, match="feature_map='softmax'"):
        linear_attention_as_baseconv(params, 4, feature_map="softmax")
    with pytest.raises(ValueError, match="layout='diagonal'"):
        linear_attention_as_baseconv(params, 4, feature_map="taylor", layout="diagonal")
    with pytest.raises(ValueError, match="seq_len=0"):
        linear_attention_as_baseconv(params, 0)
    with pytest.raises(TypeError, match="params"):
        linear_attention_as_baseconv(np.eye(2), 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="wk: shape"):
        LinearAttentionParams(wq=np.ones((2, 2)), wk=np.ones((2, 3)), wv=np.ones((2, 1)))
    with pytest.raises(ValueError, match="wv: shape"):
        LinearAttentionParams(wq=np.ones((2, 2)), wk=np.ones((2, 2)), wv=np.ones((3, 1)))
    with pytest.raises(ValueError, match="key_width=0"):
        feature_plan("identity", 0)
    with pytest.raises(ValueError, match="in_width=0"):
        random_params(np.random.default_rng(0), 0, 1, 1)
    with pytest.raises(ValueError, match="u: shape"):
        linear_attention_direct(np.ones((3, 5)), params)
    model = linear_attention_as_baseconv(params, 4)
    with pytest.raises(ValueError, match="value_width=9"):
        run_baseconv(model, np.ones((4, 2)), 9)
