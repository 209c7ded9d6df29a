"""Every validation error names the layer / op / field and the rule."""

from __future__ import annotations

import numpy as np
import pytest

from mqarkit.polynomials import (
    ArgmaxReadout,
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
    evaluate,
)


def test_stream_errors() -> None:
    with pytest.raises(ValueError, match="'a': duplicate block name"):
        Stream.of(("a", 2), ("a", 3))
    with pytest.raises(ValueError, match="'b': width=0 must be a positive int"):
        Stream.of(("a", 2), ("b", 0))
    s = Stream.of(("token", 8), ("prev_token", 8))
    assert s.width == 16 and s.names == ("token", "prev_token")
    assert s.slice("prev_token") == slice(8, 16) and s.block_width("token") == 8
    with pytest.raises(ValueError, match="'nope': not in the stream"):
        s.slice("nope")


def test_model_shape_mismatch_between_layers_names_the_layer() -> None:
    ops = [Linear(np.ones((3, 3))), Linear(np.ones((4, 4)))]
    with pytest.raises(ValueError, match=r"layer 1 \(Linear\).*in_width=4"):
        Model.sequential(ops, 3)
    stream = Stream.of(("a", 2), ("b", 1))
    with pytest.raises(ValueError, match=r"layer 0 \(Linear\).*writes \['b'\].*out_width=2"):
        Model(stream, (Layer(Linear(np.ones((2, 2))), ("a",), ("b",)),))
    with pytest.raises(ValueError, match=r"layer 0 \(Linear\): block 'c' is not in the stream"):
        Model(stream, (Layer(Linear(np.ones((2, 2))), ("c",), ("a",)),))
    with pytest.raises(ValueError, match="block 'a' is named twice"):
        Layer(Linear(np.ones((4, 2))), ("a", "a"), ("a",))
    with pytest.raises(ValueError, match="ArgmaxReadout is a readout"):
        Layer(ArgmaxReadout(np.eye(2), np.arange(2)), ("a",), ("b",))


def test_filter_longer_than_sequence() -> None:
    model = Model.sequential([Linear(np.eye(2)), CausalConv(np.ones((5, 2)))], 2)
    with pytest.raises(ValueError, match=r"layer 1: CausalConv.taps/filters: filter length k=5 .* N=4"):
        evaluate(model, np.ones((4, 2)))
    with pytest.raises(ValueError, match="filter length k=5"):
        analyse(model, 3)
    evaluate(model, np.ones((5, 2)))  # k = N is fine


def test_position_dependent_bias_of_wrong_length() -> None:
    op = BaseConv(np.eye(2), np.ones((1, 2)), bias_linear=np.ones((6, 2)))
    with pytest.raises(ValueError, match="BaseConv.bias_linear: position-dependent bias has 6 rows; .* N=5"):
        evaluate(op, np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"BaseConv.bias_conv: shape \(3,\); last axis must be 2"):
        BaseConv(np.eye(2), np.ones((1, 2)), bias_conv=np.ones(3))
    with pytest.raises(ValueError, match="positional_bias.*must be"):
        evaluate(
            SoftmaxAttention(np.eye(2), np.eye(2), np.eye(2), 1.0, positional_bias=np.zeros((3, 3))), np.ones((4, 2))
        )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights(bad: float) -> None:
    w = np.eye(2)
    w[1, 0] = bad
    with pytest.raises(ValueError, match=r"Linear.weight: entry at \[1, 0\]"):
        Linear(w)
    with pytest.raises(ValueError, match="BaseConv.filters"):
        BaseConv(np.eye(2), w)
    with pytest.raises(ValueError, match="SoftmaxAttention.beta"):
        SoftmaxAttention(np.eye(2), np.eye(2), np.eye(2), beta=bad)
    with pytest.raises(ValueError, match="UnnormalisedAttention.wv"):
        UnnormalisedAttention(np.eye(2), np.eye(2), w)


def test_bad_mask_and_window() -> None:
    eye = np.eye(2)
    with pytest.raises(ValueError, match="SoftmaxAttention.mask='full': must be one of"):
        SoftmaxAttention(eye, eye, eye, 1.0, mask="full")
    with pytest.raises(ValueError, match="SoftmaxAttention.window=None: mask='window' needs an int window >= 1"):
        SoftmaxAttention(eye, eye, eye, 1.0, mask="window")
    with pytest.raises(ValueError, match="window=0"):
        UnnormalisedAttention(eye, eye, eye, mask="window", window=0)
    with pytest.raises(ValueError, match="only mask='window' takes a window"):
        UnnormalisedAttention(eye, eye, eye, mask="causal", window=3)


def test_other_op_errors() -> None:
    with pytest.raises(ValueError, match="BaseConv.weight: shape"):
        BaseConv(np.ones((2, 3)), np.ones((1, 3)))
    with pytest.raises(ValueError, match="TaylorMap.input_dim=3: the projected key width is dk=2"):
        LinearAttention(np.eye(2), np.eye(2), np.eye(2), TaylorMap(3))
    with pytest.raises(ValueError, match="TaylorMap.layout='half'"):
        TaylorMap(2, "half")
    with pytest.raises(ValueError, match="UnnormalisedAttention.wk: shape"):
        UnnormalisedAttention(np.ones((2, 2)), np.ones((2, 3)), np.eye(2))
    with pytest.raises(TypeError, match="Linear.weight.*not a number"):
        Linear(np.array([["a"]], dtype=object))
    with pytest.raises(ValueError, match="backend='gpu'"):
        evaluate(Linear(np.eye(2)), np.ones((2, 2)), backend="gpu")
    with pytest.raises(ValueError, match="u: shape .* last axis must be the width 2"):
        evaluate(Linear(np.eye(2)), np.ones((2, 3)))
    with pytest.raises(TypeError, match="exact backend takes ints or Fractions"):
        evaluate(Linear(np.eye(2)), np.ones((2, 2)), backend="exact")
