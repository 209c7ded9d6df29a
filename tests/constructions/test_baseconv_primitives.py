"""BaseConv primitives: symbolic proofs (IR output == intended polynomial, exactly), the loop reference, errors."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from mqarkit.constructions import baseconv_primitives as bp
from mqarkit.constructions._baseconv_reference import reference_stack
from mqarkit.polynomials import Model, evaluate, generic_input
from mqarkit.tolerances import assert_close

pytestmark = pytest.mark.symbolic


def _ir_output(built: object, u: np.ndarray, backend: str) -> np.ndarray:
    if isinstance(built, Model):
        return evaluate(built, u, backend=backend)
    return evaluate(built, u, backend=backend)


def _check_symbolic(seq_len: int, width: int) -> int:
    u = generic_input(seq_len, width)
    checked = 0
    for prim in bp.PRIMITIVES:
        for params in prim.example_params(seq_len, width):
            got = _ir_output(prim.builder(seq_len, width, **params), u, "symbolic")
            want = prim.intended(u, **params)
            for idx in np.ndindex(seq_len, width):
                assert sp.expand(got[idx] - sp.sympify(want[idx])) == 0, (prim.name, params, idx, got[idx], want[idx])
            # the loop reference computes the same polynomial from the same weights
            ref = reference_stack(u, prim.weights(seq_len, width, **params))
            for idx in np.ndindex(seq_len, width):
                assert sp.expand(ref[idx] - sp.sympify(want[idx])) == 0, (prim.name, params, idx)
            checked += 1
    return checked


@pytest.mark.parametrize("seq_len", [1, 2, 5])
@pytest.mark.parametrize("width", [1, 3])
def test_primitives_symbolic_small(seq_len: int, width: int) -> None:
    assert _check_symbolic(seq_len, width) >= len(bp.PRIMITIVES) - 1


@pytest.mark.slow
@pytest.mark.parametrize("seq_len", range(1, 17))
def test_primitives_symbolic_up_to_16(seq_len: int) -> None:
    assert _check_symbolic(seq_len, 2) >= len(bp.PRIMITIVES)


def test_every_primitive_is_listed() -> None:
    names = [p.name for p in bp.PRIMITIVES]
    assert names == [
        "shift_down",
        "shift_up",
        "position_mask",
        "product",
        "constant",
        "sum_channels",
        "cumulative_sum",
        "block_add",
    ]
    assert isinstance(bp.block_add(6, 2, 2), Model) and len(bp.block_add(6, 2, 2).layers) == 2


def test_shift_down_parametric_in_n() -> None:
    """For symbolic i, s (any N): the causal convolution with the impulse X^s is u[i - s] for i >= s, else 0."""
    i, k, s = sp.symbols("i k s", integer=True, nonnegative=True)
    u = sp.Function("u")
    conv = sp.Sum(sp.KroneckerDelta(k, s) * u(i - k), (k, 0, i)).doit()
    assert conv == sp.Piecewise((u(i - s), i >= s), (0, True))


@pytest.mark.parametrize("seq_len", [3, 6, 9])
def test_shifts_as_sequence_polynomials(seq_len: int) -> None:
    """shift_down = X^s·u(X) mod X^N; shift_up = (X^(N-s)·u(X) mod X^N - 1) with the wrapped coefficients masked."""
    x = sp.Symbol("X")
    u = generic_input(seq_len, 1)
    poly = sum(u[i, 0] * x**i for i in range(seq_len))
    for s in range(seq_len):
        down = evaluate(bp.shift_down(seq_len, 1, s), u, backend="symbolic")
        expect = sp.rem(sp.expand(x**s * poly), x**seq_len, x)
        assert sp.expand(sum(down[i, 0] * x**i for i in range(seq_len)) - expect) == 0
        up = evaluate(bp.shift_up(seq_len, 1, s), u, backend="symbolic")
        cyc = sp.Poly(sp.rem(sp.expand(x ** (seq_len - s) * poly), x**seq_len - 1, x), x)
        masked = sum(cyc.coeff_monomial(x**i) * x**i for i in range(seq_len - s))
        assert sp.expand(sum(up[i, 0] * x**i for i in range(seq_len)) - masked) == 0


def test_float64_ir_matches_loop_reference() -> None:
    rng = np.random.default_rng(0)
    n, d = 7, 3
    u = rng.integers(-3, 4, size=(n, d))
    for prim in bp.PRIMITIVES:
        for params in prim.example_params(n, d):
            got = _ir_output(prim.builder(n, d, **params), u, "float64")
            ref = reference_stack(u, prim.weights(n, d, **params)).astype(np.float64)
            assert_close(got, ref, context=f"{prim.name} {params}")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: bp.shift_down(4, 2, 4), "shift=4"),
        (lambda: bp.shift_up(4, 2, -1), "shift=-1"),
        (lambda: bp.shift_down(4, 2, 1, channels=[2]), "channels=2"),
        (lambda: bp.shift_down(4, 2, 1, channels=[0, 0]), "distinct"),
        (lambda: bp.product(4, 2, 0, 5), "b=5"),
        (lambda: bp.sum_channels(4, 2, 1, 1, 0), "distinct"),
        (lambda: bp.block_add(4, 2, 0), "shift >= 1"),
        (lambda: bp.position_mask(4, 2, np.ones(3)), "mask"),
        (lambda: bp.shift_down(0, 2, 0), "seq_len=0"),
    ],
)
def test_bad_arguments_raise(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
