"""Convolution kernels (FFT vs direct), polynomial identities, and theory.md §7 errata 3, 4 as tests."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st

from mqarkit.polynomials import (
    CausalConv,
    CyclicConv,
    causal_conv_identity,
    cyclic_conv_identity,
    evaluate,
    gating_identity,
    shift_identity,
    shift_up_identity,
)
from mqarkit.polynomials.backends import Float64Backend
from mqarkit.polynomials.conv import conv_direct, conv_fft, fft_plan, next_fast_len
from mqarkit.polynomials.seqpoly import impulse, shift_down_op, to_polynomial
from mqarkit.tolerances import assert_close

X = sympy.Symbol("X")


@pytest.mark.parametrize("cyclic", [False, True])
@pytest.mark.parametrize(("n", "k"), [(97, 65), (128, 128), (200, 77), (131, 100)])
def test_fft_kernel_matches_direct(n: int, k: int, cyclic: bool) -> None:
    rng = np.random.default_rng(n + k)
    taps, x = rng.normal(size=(k, 3)), rng.normal(size=(2, n, 3))
    spectrum, nfft = fft_plan(taps, n, cyclic)
    direct = conv_direct(x, taps, Float64Backend(), cyclic=cyclic)
    assert_close(conv_fft(x, spectrum, nfft), direct, context=f"n={n} k={k} cyclic={cyclic}")
    op = (CyclicConv if cyclic else CausalConv)(taps)  # k > 64: evaluate takes the FFT path
    assert_close(evaluate(op, x), direct)


def test_direct_kernel_against_definition() -> None:
    rng = np.random.default_rng(1)
    n, k = 9, 4
    taps, u = rng.integers(-3, 4, (k, 2)), rng.integers(-3, 4, (n, 2))
    causal = evaluate(CausalConv(taps), u, backend="exact")
    cyclic = evaluate(CyclicConv(taps), u, backend="exact")
    for i in range(n):
        for q in range(2):
            assert causal[i, q] == sum(taps[s, q] * u[i - s, q] for s in range(k) if i - s >= 0)
            assert cyclic[i, q] == sum(taps[s, q] * u[(i - s) % n, q] for s in range(k))


def _is_5_smooth(m: int) -> bool:
    for p in (2, 3, 5):
        while m % p == 0:
            m //= p
    return m == 1


def test_next_fast_len() -> None:
    for n in range(1, 300):
        m = next_fast_len(n)
        smooth = [j for j in range(n, m + 1) if _is_5_smooth(j)]
        assert smooth[0] == m  # the least 5-smooth number >= n


@pytest.mark.symbolic
@given(n=st.integers(1, 7), data=st.data())
def test_polynomial_identities(n: int, data) -> None:
    u = sympy.symbols(f"u0:{n}")
    a = sympy.symbols(f"a0:{n}")
    k = data.draw(st.integers(1, n))
    taps = data.draw(st.lists(st.integers(-3, 3), min_size=k, max_size=k))
    s = data.draw(st.integers(0, n - 1))
    for lhs, rhs in (
        causal_conv_identity(taps, u, X),
        cyclic_conv_identity(taps, u, X),
        shift_identity(u, s, X),
        gating_identity(u, a, X),
    ):
        assert lhs == rhs
    if n > 1:
        up = data.draw(st.integers(1, n - 1))
        lhs, rhs = shift_up_identity(u, up, X)
        assert lhs == rhs
        assert rhs == to_polynomial(list(u[up:]), X)


@pytest.mark.symbolic
def test_erratum_3_shift_down_by_s_is_X_to_the_s() -> None:
    n, s = 6, 2
    u = sympy.symbols(f"u0:{n}")
    lhs, _ = shift_identity(u, s, X)
    assert lhs == to_polynomial([0] * s + list(u[: n - s]), X)  # y[i] = u[i - s]
    printed = sympy.expand(sympy.rem(X ** (s + 1) * to_polynomial(u, X), X**n, X))  # the printed impulse s+1
    assert lhs != printed
    col = np.array(u, dtype=object)[:, None]
    out = evaluate(shift_down_op(s, n), col, backend="symbolic")[:, 0]
    assert list(out) == [0] * s + list(u[: n - s])


@pytest.mark.symbolic
def test_erratum_4_cyclic_identity_filter_does_not_reverse() -> None:
    n = 5
    u = sympy.symbols(f"u0:{n}")
    col = np.array(u, dtype=object)[:, None]
    out = list(evaluate(CyclicConv(impulse(0, n)[:, None]), col, backend="symbolic")[:, 0])
    assert out == list(u)  # the identity filter is the identity
    assert out != list(reversed(u))
    # shift up by s: one cyclic impulse at N - s plus the mask 1[i + s < N]
    lhs, rhs = shift_up_identity(u, 2, X)
    assert lhs == rhs == to_polynomial([u[2], u[3], u[4]], X)
