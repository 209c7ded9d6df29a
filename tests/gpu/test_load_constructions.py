"""Every registered construction loaded into torch mixers: per-layer states == the float64 IR, answers == oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mqarkit.constructions import build, names
from mqarkit.gpu.loaders import LoadedModel, load, token_io
from mqarkit.oracle import score
from mqarkit.polynomials import embed, evaluate
from mqarkit.task import MQARSpec, generate
from mqarkit.tolerances import assert_close

# (construction, knobs, filler of the instances it claims to solve exactly)
CASES = {
    "attention_onehot": ({}, "clean"),
    "attention_signcode": ({}, "clean"),
    "sliding_window": ({"window": 22}, "clean"),  # covers every query of N = 22
    "based_taylor": ({}, "zero"),  # regime A is exact on zero filler (module docstring)
    "baseconv_data_independent": ({}, "clean"),
    "baseconv_input_dependent": ({}, "clean"),
    "delta_rule": ({}, "clean"),
    "baseconv_argmax_lookup": ({}, "random"),  # exact on every filler at its depth (claim X1)
}
C, SEQ, D = 24, 22, 3


def test_every_registered_construction_has_a_case() -> None:
    assert set(names()) <= set(CASES), f"new constructions without a loader test: {set(names()) - set(CASES)}"


def _case(name: str):
    if name not in names():
        pytest.skip(f"{name} is not registered")
    knobs, filler = CASES[name]
    con = build(name, vocab_size=C, seq_len=SEQ, num_kv_pairs=D, **knobs)
    batch = generate(MQARSpec(vocab_size=C, seq_len=SEQ, num_kv_pairs=D, filler=filler), 4, np.random.default_rng(3))
    return con, batch


@pytest.mark.parametrize("target", ["mqarkit", "torch"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_per_layer_states_match_ir(name: str, target: str) -> None:
    con, batch = _case(name)
    io = token_io(con)
    tokens = torch.from_numpy(batch.inputs)
    if hasattr(con, "model_for"):  # input-dependent: one model per example
        irs = [con.model_for(x) for x in batch.inputs]
    else:
        irs = [con.model] * len(batch.inputs)
    for k, ir in enumerate(irs):
        loaded = LoadedModel(ir, io, SEQ, target, name).double()
        got = loaded.trace(tokens[k : k + 1])
        want = evaluate(ir, embed(ir, {io.input_block: io.input_codebook[batch.inputs[k : k + 1]]}), trace=True)
        assert len(got) == len(want) == len(ir.layers) + 1
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, dtype="float64", context=f"{name} example {k} state {i}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", sorted(CASES))
def test_loaded_model_solves_mqar(name: str, dtype: torch.dtype) -> None:
    con, batch = _case(name)
    loaded = load(con, dtype=dtype)
    pred = loaded.predict(torch.from_numpy(batch.inputs))
    assert pred.shape == batch.inputs.shape and pred.dtype == torch.int64
    assert score(pred.numpy(), batch).accuracy == 1.0
    assert score(con.predict(batch.inputs), batch).accuracy == 1.0


def test_signcode_positional_shift_loads_through_multihead_attention() -> None:
    con = build("attention_signcode", vocab_size=C, seq_len=SEQ, num_kv_pairs=D, shift="positional")
    batch = generate(MQARSpec(vocab_size=C, seq_len=SEQ, num_kv_pairs=D, filler="clean"), 4, np.random.default_rng(4))
    loaded = load(con, target="torch", dtype=torch.float64)
    assert score(loaded.predict(torch.from_numpy(batch.inputs)).numpy(), batch).accuracy == 1.0
    with pytest.raises(ValueError, match="positional_bias"):
        load(con, target="mqarkit")


def test_bad_requests_raise() -> None:
    con = build("attention_onehot", vocab_size=8, seq_len=8, num_kv_pairs=2)
    with pytest.raises(ValueError, match="target='jax'"):
        load(con, target="jax")
    with pytest.raises(ValueError, match="dtype=torch.bfloat16: unsupported on cpu"):
        load(con, dtype=torch.bfloat16)
    loaded = load(con)
    with pytest.raises(ValueError, match="seq_len=8"):
        loaded.predict(torch.zeros(1, 7, dtype=torch.int64))
    with pytest.raises(ValueError, match="vocab_size=8"):
        loaded.predict(torch.full((1, 8), 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="int64"):
        loaded.predict(torch.zeros(1, 8))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_cuda_and_fla_without_gpu_raise() -> None:
    con = build("attention_onehot", vocab_size=8, seq_len=8, num_kv_pairs=2)
    with pytest.raises(RuntimeError, match="device='cuda'"):
        load(con, device="cuda")
    with pytest.raises(RuntimeError, match="target='fla'"):
        load(con, target="fla")


@pytest.mark.gpu
def test_based_taylor_through_fla_kernels_matches_our_path_on_cuda() -> None:
    """The third-party target: Based's lookup run by fla's ``parallel_based`` gives the stream states of our own torch
    path (float32 tolerance) and solves MQAR on the construction's claimed range (zero filler)."""
    pytest.importorskip("fla")
    con = build("based_taylor", vocab_size=64, seq_len=32, num_kv_pairs=4)
    batch = generate(MQARSpec(vocab_size=64, seq_len=32, num_kv_pairs=4, filler="zero"), 8, np.random.default_rng(5))
    inputs = torch.from_numpy(batch.inputs).cuda()
    ours = load(con, device="cuda", dtype=torch.float32)
    theirs = load(con, target="fla", device="cuda", dtype=torch.float32)
    for k, (a, b) in enumerate(zip(ours.trace(inputs), theirs.trace(inputs))):
        assert_close(b, a, dtype="float32", context=f"stream state after layer {k}")
    assert score(theirs.predict(inputs).cpu().numpy(), batch).accuracy == 1.0
