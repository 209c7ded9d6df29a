"""symbolic == exact == float64 on hypothesis-drawn models and inputs."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st
from poly_strategies import inputs, models

from mqarkit.polynomials import (
    BaseConv,
    Layer,
    Linear,
    Model,
    SoftmaxAttention,
    Stream,
    embed,
    evaluate,
    generic_input,
    read,
)
from mqarkit.tolerances import assert_close


def _as_float(a: np.ndarray) -> np.ndarray:
    return np.array([float(x) for x in a.ravel()]).reshape(a.shape)


@pytest.mark.symbolic
@given(data=st.data(), drawn=models())
def test_symbolic_equals_exact_equals_float64(data, drawn) -> None:
    model, n = drawn
    u = data.draw(inputs(n, model.width))
    exact = evaluate(model, u, backend="exact")
    assert all(isinstance(x, Fraction) for x in exact.ravel())
    # symbolic on generic symbols, then substituted, equals the exact evaluation
    syms = generic_input(n, model.width)
    poly = evaluate(model, syms, backend="symbolic")
    values = {syms[idx]: sympy.Rational(u[idx].numerator, u[idx].denominator) for idx in np.ndindex(*u.shape)}
    for idx in np.ndindex(*exact.shape):
        assert poly[idx].subs(values) == sympy.Rational(exact[idx].numerator, exact[idx].denominator)
    # symbolic on the numbers themselves gives sympy Rationals equal to the Fractions
    direct = evaluate(model, u, backend="symbolic")
    assert all(isinstance(x, sympy.Rational) for x in direct.ravel())
    assert all(
        direct[idx] == sympy.Rational(exact[idx].numerator, exact[idx].denominator) for idx in np.ndindex(*u.shape)
    )
    # float64 (dyadic weights and inputs: exact up to rounding of large values)
    assert_close(evaluate(model, _as_float(u)), _as_float(exact), context=repr(model.layers))


@given(data=st.data(), drawn=models(), batch=st.integers(1, 3))
def test_float64_batch_equals_per_example(data, drawn, batch) -> None:
    model, n = drawn
    us = np.stack([_as_float(data.draw(inputs(n, model.width))) for _ in range(batch)])
    out = evaluate(model, us)
    assert out.shape == us.shape
    for b in range(batch):
        assert_close(out[b], evaluate(model, us[b]))


def test_symbolic_output_is_expanded_with_rational_coefficients() -> None:
    w = np.array([[Fraction(1, 3), 1], [2, Fraction(-1, 2)]], dtype=object)
    op = BaseConv(w, np.array([[1, 1], [Fraction(1, 5), 0]], dtype=object))
    out = evaluate(op, generic_input(3, 2), backend="symbolic")
    for e in out.ravel():
        assert e == sympy.expand(e)
        assert not e.atoms(sympy.Float)
        assert all(isinstance(c, sympy.Rational) for c in sympy.Poly(e).coeffs())


def test_irrational_weights_run_over_the_expression_domain() -> None:
    op = Linear(np.array([[sympy.sqrt(2)]], dtype=object))
    out = evaluate(Model.sequential([op, op], 1), generic_input(2, 1), backend="symbolic")
    assert out[1, 0] == 2 * sympy.Symbol("u_1_0")
    with pytest.raises(ValueError, match="not rational"):
        evaluate(op, np.array([[1]]), backend="exact")


def test_softmax_is_not_exact() -> None:
    from mqarkit.polynomials import NotExactError

    op = SoftmaxAttention(np.eye(2), np.eye(2), np.eye(2), beta=1.0)
    for backend in ("exact", "symbolic"):
        with pytest.raises(NotExactError, match="not exact"):
            evaluate(op, np.ones((3, 2), dtype=np.int64), backend=backend)


def test_trace_embed_and_read() -> None:
    stream = Stream.of(("a", 2), ("b", 1))
    model = Model(
        stream,
        (
            Layer(Linear(np.array([[1], [1]])), ("a",), ("b",)),
            Layer(Linear(np.array([[2, 0, 0], [0, 1, 0], [0, 0, 3]])), ("a", "b"), ("a", "b"), residual=False),
        ),
    )
    u = embed(model, {"a": np.array([[1, 2], [3, 4]])})
    assert u.shape == (2, 3) and (u[:, 2] == 0).all()
    states = evaluate(model, u, backend="exact", trace=True)
    assert len(states) == 3
    assert states[1][:, 2].tolist() == [3, 7]  # residual write: 0 + (a0 + a1)
    assert states[2].tolist() == [[2, 2, 9], [6, 4, 21]]
    assert read(model, states[2], "b")[:, 0].tolist() == [9, 21]
    assert_close(evaluate(model, u.astype(float)), _as_float(states[2]))


def test_random_float_models_agree_with_exact_on_float_weights() -> None:
    rng = np.random.default_rng(0)
    n, d = 7, 5  # odd length, width not a power of two
    ops = [BaseConv(rng.normal(size=(d, d)), rng.normal(size=(n, d)), rng.normal(size=(n, d)), rng.normal(size=d))]
    model = Model.sequential(ops * 2, d)
    u = rng.normal(size=(n, d))
    exact = evaluate(model, u.astype(object), backend="exact")  # floats taken at their exact binary value
    assert_close(evaluate(model, u), _as_float(exact))
