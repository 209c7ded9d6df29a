"""Loaded layers vs the float64 IR, op by op, with distinct-valued weights (a swapped or transposed matrix fails)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mqarkit.gpu.load_mapping import Entry, load_checked
from mqarkit.gpu.loaders import LoadedModel, TokenIO
from mqarkit.polynomials import (
    BaseConv,
    CausalConv,
    IdentityMap,
    Layer,
    Linear,
    LinearAttention,
    Model,
    SoftmaxAttention,
    Stream,
    TaylorMap,
    UnnormalisedAttention,
    embed,
    evaluate,
)
from mqarkit.tolerances import assert_close

N, C = 9, 11  # sequence length, vocabulary of the random token code


def distinct(rng: np.random.Generator, *shape: int, scale: float = 0.5) -> np.ndarray:
    """Distinct values (a random permutation of an evenly spaced grid, so no two entries coincide)."""
    size = int(np.prod(shape))
    grid = (np.arange(size) + 1.0) / size * scale * np.sign(rng.standard_normal(size))
    return rng.permutation(grid).reshape(shape)


def one_layer(op, in_w: int, rng: np.random.Generator) -> tuple[Model, TokenIO]:
    """A model ``x -> op(x)`` written to block ``y`` (residual, so ``y`` also keeps its zero start)."""
    stream = Stream.of(("x", in_w), ("y", op.out_width))
    model = Model(stream, (Layer(op, reads=("x",), writes=("y",)),))
    io = TokenIO("x", distinct(rng, C, in_w, scale=1.0), "y", np.eye(op.out_width), np.arange(op.out_width))
    return model, io


def check_against_ir(op, in_w: int, target: str = "mqarkit", seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    model, io = one_layer(op, in_w, rng)
    loaded = LoadedModel(model, io, N, target).double()
    tokens = rng.integers(0, C, size=(3, N))
    got = loaded.trace(torch.from_numpy(tokens))
    want = evaluate(model, embed(model, {"x": io.input_codebook[tokens]}), trace=True)
    assert len(got) == len(want) == 2
    for k, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, dtype="float64", context=f"{op.label} state {k}")


def test_linear_per_channel_and_position_bias() -> None:
    rng = np.random.default_rng(1)
    check_against_ir(Linear(distinct(rng, 5, 7), distinct(rng, 7)), 5)
    check_against_ir(Linear(distinct(rng, 5, 7), distinct(rng, N, 7)), 5)


def test_causal_conv_taps_reversed() -> None:
    rng = np.random.default_rng(2)
    check_against_ir(CausalConv(distinct(rng, 4, 6)), 6)


@pytest.mark.parametrize("biases", ["position", "channel", "none"])
@pytest.mark.parametrize("k", [3, N])
def test_baseconv_paper(biases: str, k: int) -> None:
    rng = np.random.default_rng(3)
    shape = {"position": (N, 6), "channel": (6,), "none": None}[biases]
    b1 = None if shape is None else distinct(rng, *shape)
    b2 = None if shape is None else distinct(rng, *shape)
    check_against_ir(BaseConv(distinct(rng, 6, 6), distinct(rng, k, 6), b1, b2), 6)


@pytest.mark.parametrize("target", ["mqarkit", "torch"])
@pytest.mark.parametrize("mask,window", [("causal", None), ("strict", None), ("window", 3)])
def test_softmax_attention(mask: str, window: int | None, target: str) -> None:
    rng = np.random.default_rng(4)
    op = SoftmaxAttention(
        distinct(rng, 5, 3),
        distinct(rng, 5, 3),
        distinct(rng, 5, 4),
        beta=1.7,
        mask=mask,
        window=window,
        wo=distinct(rng, 4, 6),
    )
    check_against_ir(op, 5, target)


def test_softmax_positional_bias_through_multihead_attention() -> None:
    rng = np.random.default_rng(5)
    op = SoftmaxAttention(
        distinct(rng, 4, 2),
        distinct(rng, 4, 2),
        distinct(rng, 4, 4),
        beta=0.9,
        mask="strict",
        positional_bias=distinct(rng, N, N, scale=3.0),
    )
    check_against_ir(op, 4, "torch")
    with pytest.raises(ValueError, match="positional_bias"):
        check_against_ir(op, 4, "mqarkit")


@pytest.mark.parametrize("mask,window", [("causal", None), ("strict", None), ("window", 4)])
def test_unnormalised_attention(mask: str, window: int | None) -> None:
    rng = np.random.default_rng(6)
    op = UnnormalisedAttention(distinct(rng, 6, 3), distinct(rng, 6, 3), distinct(rng, 6, 2), mask=mask, window=window)
    check_against_ir(op, 6)


@pytest.mark.parametrize("normalise", [True, False])
@pytest.mark.parametrize("layout,scale", [("full", True), ("compressed", False)])
def test_taylor_linear_attention(normalise: bool, layout: str, scale: bool) -> None:
    rng = np.random.default_rng(7)
    op = LinearAttention(
        distinct(rng, 6, 3),
        distinct(rng, 6, 3),
        distinct(rng, 6, 4),
        TaylorMap(3, layout=layout, scale=scale),
        normalise=normalise,
        eps=0.25 if normalise else 0.0,
        wo=distinct(rng, 4, 5),
    )
    check_against_ir(op, 6)


def test_unnormalised_taylor_chunks_agree_with_one_chunk() -> None:
    """The chunked unnormalised form (state carried across chunks) equals the single-chunk quadratic form."""
    rng = np.random.default_rng(8)
    op = LinearAttention(distinct(rng, 4, 2), distinct(rng, 4, 2), distinct(rng, 4, 4), TaylorMap(2), normalise=False)
    model, io = one_layer(op, 4, rng)
    loaded = LoadedModel(model, io, N, "mqarkit").double()
    x = torch.from_numpy(distinct(rng, 2, N, 4))
    layer = loaded.layers[0]
    whole = layer.unnormalised(x)
    layer.chunk_size = 2
    assert_close(layer.unnormalised(x), whole, dtype="float64", context="chunk 2 vs chunk 256")


def test_swapped_query_and_key_is_detected() -> None:
    """Sensitivity: with distinct weights, loading wk where wq belongs changes the output."""
    rng = np.random.default_rng(9)
    wq, wk, wv = distinct(rng, 5, 3), distinct(rng, 5, 3), distinct(rng, 5, 4)
    good = SoftmaxAttention(wq, wk, wv, beta=2.0)
    swapped = SoftmaxAttention(wk, wq, wv, beta=2.0)
    model, io = one_layer(good, 5, rng)
    loaded = LoadedModel(model, io, N, "mqarkit").double()
    wrong = LoadedModel(one_layer(swapped, 5, rng)[0], io, N, "mqarkit").double()
    tokens = torch.from_numpy(rng.integers(0, C, size=(2, N)))
    assert not torch.allclose(loaded(tokens), wrong(tokens), rtol=1e-3, atol=1e-6)


def test_key_map_lists_transposes_and_covers_every_key() -> None:
    rng = np.random.default_rng(10)
    op = SoftmaxAttention(distinct(rng, 5, 3), distinct(rng, 5, 3), distinct(rng, 5, 4), beta=1.0)
    loaded = LoadedModel(*one_layer(op, 5, rng), N, "mqarkit")
    key_map = loaded.key_maps[0]
    assert set(key_map) == set(loaded.layers[0].state_dict())
    assert "(transposed)" in key_map["mixer.Wqkv.weight"]


def test_shape_assertion_names_key_and_shapes() -> None:
    module = torch.nn.Linear(3, 2, bias=False)
    with pytest.raises(ValueError, match=r"weight from W has shape \(3, 2\), the module needs \(2, 3\)"):
        load_checked(module, [Entry("weight", "W", False, torch.zeros(3, 2, dtype=torch.float64))], "layer 0")
    with pytest.raises(ValueError, match="does not cover"):
        load_checked(module, [], "layer 0")


def test_unmappable_ops_raise() -> None:
    rng = np.random.default_rng(11)
    cyclic = BaseConv(distinct(rng, 4, 4), distinct(rng, 2, 4), cyclic=True)
    with pytest.raises(ValueError, match="cyclic=True"):
        check_against_ir(cyclic, 4)
    ident = LinearAttention(distinct(rng, 4, 2), distinct(rng, 4, 2), distinct(rng, 4, 2), IdentityMap())
    with pytest.raises(ValueError, match="IdentityMap"):
        check_against_ir(ident, 4)
