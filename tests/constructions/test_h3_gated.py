"""H3 layer vs its BaseConv model (constructions/h3_gated.py): float64, exact over Q, symbolic; SSM scans vs kernels."""

from __future__ import annotations

from dataclasses import fields, replace
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st

from mqarkit.constructions.h3_gated import (
    H3Params,
    causal_conv,
    claimed_resources,
    diag_kernel,
    h3_as_baseconv,
    h3_layer_direct,
    h3_layer_recurrent,
    random_h3_params,
    run_h3_baseconv,
    shift_kernel,
    ssm_scan_diag,
    ssm_scan_shift,
)
from mqarkit.polynomials import analyse, evaluate
from mqarkit.tolerances import assert_close


def _fractions(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        out[idx] = Fraction(int(rng.integers(-5, 6)), int(rng.integers(1, 4)))
    return out


# --------------------------------------------------------------------------------------------------------------------
# the BaseConv model equals the direct layer


@pytest.mark.parametrize(
    "seq_len, width, s, m",
    [(1, 1, 1, 1), (5, 1, 2, 1), (7, 3, 3, 2), (8, 2, 12, 3), (13, 4, 4, 2), (31, 5, 6, 4), (97, 3, 5, 2)],
)
def test_baseconv_equals_direct_float64(seq_len: int, width: int, s: int, m: int) -> None:
    # (8, 2, 12, 3): s > N, the shift kernel is truncated; (97, ...): the IR's FFT path for the long diag filter
    rng = np.random.default_rng(seq_len * 100 + width)
    params = random_h3_params(rng, width, s, m)
    u = rng.normal(size=(3, seq_len, width))
    model = h3_as_baseconv(params, seq_len)
    want = h3_layer_direct(u, params)
    assert want.shape == (3, seq_len, width) and want.dtype == np.float64
    assert np.abs(want).max() > 1e-3  # not a vacuous all-zero comparison
    assert_close(run_h3_baseconv(model, u), want, context=f"N={seq_len}, d={width}")
    assert_close(run_h3_baseconv(model, u[1]), want[1])  # unbatched input


@given(
    seq_len=st.integers(1, 24),
    width=st.integers(1, 4),
    s=st.integers(1, 9),
    m=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_baseconv_equals_direct_property(seq_len: int, width: int, s: int, m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    params = random_h3_params(rng, width, s, m)
    u = rng.normal(size=(seq_len, width))
    assert_close(run_h3_baseconv(h3_as_baseconv(params, seq_len), u), h3_layer_direct(u, params))


@pytest.mark.parametrize("seq_len, width, s", [(1, 2, 1), (4, 2, 2), (6, 3, 3), (7, 2, 9)])
def test_baseconv_equals_direct_exact(seq_len: int, width: int, s: int) -> None:
    rng = np.random.default_rng(7 * seq_len + width)
    params = random_h3_params(rng, width, s, 2, exact=True)
    assert params.is_exact
    u = _fractions(rng, (seq_len, width))
    got = run_h3_baseconv(h3_as_baseconv(params, seq_len), u, backend="exact")
    want = h3_layer_direct(u, params)
    assert all(isinstance(x, Fraction) for x in want.ravel())
    assert (got == want).all()
    assert (h3_layer_recurrent(u, params) == want).all()
    # the float path of rational parameters agrees too
    assert_close(h3_layer_direct(u.astype(np.float64), params), want.astype(np.float64))


@pytest.mark.symbolic
def test_baseconv_equals_direct_symbolic() -> None:
    """As polynomials in symbolic inputs ``u_i_c`` over Q (rational parameters): an identity, not a sample."""
    n, d = 3, 2
    rng = np.random.default_rng(3)
    params = random_h3_params(rng, d, 2, 2, exact=True)
    u = np.array([[sympy.Symbol(f"u_{i}_{c}") for c in range(d)] for i in range(n)], dtype=object)
    got = run_h3_baseconv(h3_as_baseconv(params, n), u, backend="symbolic")
    want = h3_layer_direct(u, params)
    for idx in np.ndindex(n, d):
        assert sympy.expand(got[idx] - want[idx]) == 0
        # the map has degree 3 (q·k·v), far below the 2^4 bound of 4 BaseConv layers
        assert sympy.Poly(got[idx], *u.ravel()).total_degree() <= 3
    assert sympy.Poly(got[n - 1, 0], *u.ravel()).total_degree() == 3


def test_a_wrong_model_is_detected() -> None:
    """The comparison can fail: swapping q and v (or dropping the shift SSM's D) changes the output."""
    rng = np.random.default_rng(11)
    params = random_h3_params(rng, 3, 3, 2)
    u = rng.normal(size=(9, 3))
    want = h3_layer_direct(u, params)
    for wrong in (replace(params, wq=params.wv, wv=params.wq), replace(params, shift_d=np.zeros(3))):
        with pytest.raises(AssertionError):
            assert_close(run_h3_baseconv(h3_as_baseconv(wrong, 9), u), want)


# --------------------------------------------------------------------------------------------------------------------
# the SSMs: recurrent scan == convolution with the materialised kernel == C A^j B from explicit matrices


@pytest.mark.parametrize("seq_len, width, s, m", [(1, 1, 1, 1), (6, 2, 3, 2), (9, 3, 12, 3), (40, 4, 7, 5)])
def test_scan_equals_materialised_convolution_float64(seq_len: int, width: int, s: int, m: int) -> None:
    rng = np.random.default_rng(seq_len + 31 * s)
    params = random_h3_params(rng, width, s, m)
    w = rng.normal(size=(2, seq_len, width))
    assert_close(ssm_scan_shift(w, params), causal_conv(w, shift_kernel(params, seq_len)))
    assert_close(ssm_scan_diag(w, params), causal_conv(w, diag_kernel(params, seq_len)))
    assert_close(h3_layer_recurrent(w, params), h3_layer_direct(w, params))


@pytest.mark.parametrize("seq_len, s", [(5, 2), (6, 6), (4, 7)])
def test_scan_equals_materialised_convolution_exact(seq_len: int, s: int) -> None:
    rng = np.random.default_rng(seq_len * s)
    params = random_h3_params(rng, 2, s, 3, exact=True)
    w = _fractions(rng, (seq_len, 2))
    assert (ssm_scan_shift(w, params) == causal_conv(w, shift_kernel(params, seq_len))).all()
    assert (ssm_scan_diag(w, params) == causal_conv(w, diag_kernel(params, seq_len))).all()


def _shift_matrix(s: int) -> np.ndarray:
    a = np.full((s, s), 0, dtype=object)
    for n in range(1, s):
        a[n, n - 1] = 1
    return a


@pytest.mark.parametrize("seq_len, s", [(6, 3), (3, 5), (8, 1)])
def test_kernels_equal_c_a_power_b(seq_len: int, s: int) -> None:
    """Each tap equals ``C A^j B + D·[j = 0]`` computed with the explicit state matrix, exactly."""
    m = 3
    rng = np.random.default_rng(s)
    p = random_h3_params(rng, 2, s, m, exact=True)
    hs, hd = shift_kernel(p, seq_len), diag_kernel(p, seq_len)
    assert hs.shape == hd.shape == (seq_len, 2)
    shift = _shift_matrix(s)
    for c in range(2):
        power_s = np.identity(s, dtype=object).astype(object)
        power_d = np.identity(m, dtype=object).astype(object)
        diag = np.diag(p.diag_a[c])
        for j in range(seq_len):
            skip_s, skip_d = (p.shift_d[c], p.diag_d[c]) if j == 0 else (0, 0)
            assert hs[j, c] == p.shift_c[c] @ power_s @ p.shift_b[c] + skip_s
            assert hd[j, c] == p.diag_c[c] @ power_d @ p.diag_b[c] + skip_d
            if j >= s:
                assert hs[j, c] == 0  # a shift SSM of state size s reaches lags 0..s-1 only
            power_s, power_d = shift @ power_s, diag @ power_d


def test_shift_ssm_with_unit_b_realises_its_c_as_filter() -> None:
    """With ``B = e_0`` the shift SSM's kernel is ``C`` itself (+ ``D`` at lag 0): any filter on lags 0..s-1."""
    rng = np.random.default_rng(5)
    p = random_h3_params(rng, 2, 4, 1)
    b = np.zeros((2, 4))
    b[:, 0] = 1.0
    h = shift_kernel(replace(p, shift_b=b, shift_d=np.zeros(2)), 10)
    assert_close(h[:4].T, p.shift_c)
    assert (h[4:] == 0).all()


# --------------------------------------------------------------------------------------------------------------------
# resources and the registry check


@pytest.mark.parametrize("seq_len, width, s, m", [(1, 1, 1, 1), (9, 3, 4, 2), (16, 2, 20, 3), (70, 5, 3, 2)])
def test_claimed_resources_equal_measured(seq_len: int, width: int, s: int, m: int) -> None:
    params = random_h3_params(np.random.default_rng(0), width, s, m)
    model = h3_as_baseconv(params, seq_len)
    claimed, got = claimed_resources(params, seq_len), analyse(model, seq_len)
    assert (got.layers, got.width) == (claimed.layers, claimed.width) == (4, 2 * width)
    assert got.parameters == claimed.parameters
    assert got.state_numbers == claimed.state_numbers
    assert got.degree_bound == claimed.degree_bound == 16
    assert claimed.h3_state_numbers == width * (s + m)


# --------------------------------------------------------------------------------------------------------------------
# bad input


def _good() -> dict[str, np.ndarray]:
    p = random_h3_params(np.random.default_rng(1), 2, 3, 2)
    return {f.name: getattr(p, f.name) for f in fields(p)}


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("wk", np.zeros((2, 3)), r"H3Params\.wk: shape \(2, 3\) must be \(d, d\)"),
        ("bo", np.zeros(3), r"H3Params\.bo: shape \(3,\) must be \(d,\)"),
        ("shift_c", np.zeros((2, 4)), r"H3Params\.shift_c: shape \(2, 4\) must equal shift_b"),
        ("shift_b", np.zeros((2, 0)), r"H3Params\.shift_b: .*s >= 1"),
        ("diag_b", np.zeros((3, 2)), r"H3Params\.diag_b: shape \(3, 2\) must equal diag_a"),
        ("diag_a", np.array([[0.5, 1.5], [0.1, 0.2]]), r"H3Params\.diag_a: entry \[0, 1\].*\|A\| <= 1"),
        ("wv", np.array([[np.nan, 0.0], [0.0, 1.0]]), r"H3Params\.wv: .*NaN/inf"),
        ("diag_d", np.zeros((2, 1)), r"H3Params\.diag_d: has 2 dimensions"),
    ],
)
def test_bad_params_raise_naming_the_field(field: str, value: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        H3Params(**{**_good(), field: value})


def test_bad_types_and_sizes_raise() -> None:
    with pytest.raises(TypeError, match=r"H3Params\.wq"):
        H3Params(**{**_good(), "wq": np.ones((2, 2), dtype=bool)})
    params = H3Params(**_good())
    with pytest.raises(ValueError, match=r"seq_len=0: must be an int >= 1"):
        h3_as_baseconv(params, 0)
    with pytest.raises(ValueError, match=r"u: shape \(4, 3\) must be \(N >= 1, d=2\)"):
        h3_layer_direct(np.zeros((4, 3)), params)
    with pytest.raises(ValueError, match=r"width=0: must be an int >= 1"):
        random_h3_params(np.random.default_rng(0), 0, 1, 1)
    with pytest.raises(ValueError, match=r"filter length"):  # a model built for N = 4 refuses N = 3
        run_h3_baseconv(h3_as_baseconv(params, 4), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"the last axis must be the width 4"):  # the stream is [u, aux]: 2d
        evaluate(h3_as_baseconv(params, 4), np.zeros((4, 2)))
