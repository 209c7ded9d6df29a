"""Arithmetic circuits, their BaseConv compilation, and erratum 8 (causal BaseConv cannot read a later input)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import given

from mqarkit.polynomials import (
    BaseConv,
    CircuitBuilder,
    Model,
    circuits,
    compile_to_baseconv,
    embed,
    evaluate,
    generic_input,
    random_circuit,
    read,
)


def _run_compiled(model: Model, values: np.ndarray, backend: str) -> np.ndarray:
    return read(model, evaluate(model, embed(model, {"x": values[:, None]}), backend=backend), "x")[:, 0]


@pytest.mark.symbolic
@given(circuit=circuits())
def test_compiled_model_equals_circuit_polynomial(circuit) -> None:
    for cyclic in (True, False):
        if not cyclic and not circuit.is_causal():
            with pytest.raises(ValueError, match=r"gate .* reads input \d+, a later position"):
                compile_to_baseconv(circuit, cyclic=False)
            continue
        model = compile_to_baseconv(circuit, cyclic=cyclic)
        n = model.layers[0].op.bias_conv.shape[0]
        xs = sympy.symbols(f"x0:{n}")
        out = _run_compiled(model, np.array(xs, dtype=object), "symbolic")
        expected = circuit.polynomial(xs)
        assert list(out[: len(expected)]) == list(expected)
        assert all(o == 0 for o in out[len(expected) :])
        assert len(model.layers) == 2 * circuit.depth + 4
        assert model.width == circuit.num_inputs + circuit.size


def test_circuit_structure_and_exact_evaluation() -> None:
    b = CircuitBuilder()
    x0, x1 = b.input(0), b.input(1)
    s = b.add(x0, x1)
    p = b.mul(s, s)
    c = b.const(Fraction(1, 2))
    out = b.mul(p, c)
    circuit = b.build([s, out])
    assert (circuit.size, circuit.depth, circuit.width, circuit.num_inputs) == (4, 3, 1, 2)
    assert circuit.evaluate([1, 2]) == (Fraction(3), Fraction(9, 2))
    x, y = sympy.symbols("x y")
    assert circuit.polynomial([x, y]) == (x + y, sympy.expand((x + y) ** 2 / 2))
    model = compile_to_baseconv(circuit, cyclic=True, seq_len=5)
    exact = _run_compiled(model, np.array([1, 2, 0, 0, 0]), "exact")
    assert exact.tolist() == [3, Fraction(9, 2), 0, 0, 0]
    # output 0 reads input 1, a later position
    with pytest.raises(ValueError, match=r"gate 2 \(output 0\) reads input 1"):
        compile_to_baseconv(circuit)


def test_random_circuits_float64_and_exact() -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        circuit = random_circuit(rng, num_inputs=4, num_gates=8, num_outputs=4)
        model = compile_to_baseconv(circuit, cyclic=True)
        values = rng.integers(-3, 4, size=4)
        expected = circuit.evaluate(list(values))
        assert list(_run_compiled(model, values, "exact")) == list(expected)
        assert np.allclose(
            _run_compiled(model, values.astype(float), "float64"), [float(e) for e in expected], rtol=0, atol=0
        )


@pytest.mark.symbolic
def test_erratum_8_causal_baseconv_cannot_read_a_later_input() -> None:
    """A generic causal BaseConv stack's output at position j involves inputs at positions <= j only, so no causal
    BaseConv computes y_0 = x_1 (a circuit reading a later input); the cyclic compile does."""
    rng = np.random.default_rng(0)
    n, d = 3, 2
    layers = [
        BaseConv(
            rng.integers(1, 3, (d, d)),
            rng.integers(1, 3, (n, d)),
            rng.integers(1, 3, (n, d)),
            rng.integers(1, 3, (n, d)),
        )
        for _ in range(2)
    ]
    u = generic_input(n, d)
    out = evaluate(Model.sequential(layers, d), u, backend="symbolic")
    for j in range(n):
        later = {u[i, q] for i in range(j + 1, n) for q in range(d)}
        assert all(not (e.free_symbols & later) for e in out[j])
        assert out[j, 0].free_symbols  # and it does depend on the earlier ones
    b = CircuitBuilder()
    b.input(0)
    x1 = b.input(1)
    circuit = b.build([x1])
    with pytest.raises(ValueError, match=r"gate 1 \(output 0\) reads input 1"):
        compile_to_baseconv(circuit)
    xs = sympy.symbols("x0:2")
    assert _run_compiled(compile_to_baseconv(circuit, cyclic=True), np.array(xs, dtype=object), "symbolic")[0] == xs[1]
