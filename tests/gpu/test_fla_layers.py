"""Constructions inside fla's own layer classes (DeltaNet, BasedLinearAttention): exact recall on the GPU.

The GPU tests import fla through the loaders (no import guard: without fla-core they fail, they do not skip); the
CPU tests cover the refusals and the float64 reference the GPU tests compare against.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mqarkit.constructions import build
from mqarkit.gpu.load_fla_layers import load_fla_based, load_fla_deltanet, normalised_lookup_reference
from mqarkit.oracle import score
from mqarkit.task import MQARSpec, generate
from mqarkit.tolerances import assert_close


def _batch(c: int, n: int, d: int, filler: str, num_examples: int = 16, seed: int = 0):
    spec = MQARSpec(vocab_size=c, seq_len=n, num_kv_pairs=d, filler=filler)
    return generate(spec, num_examples, np.random.default_rng(seed))


def test_loaders_refuse_the_cpu_and_other_constructions() -> None:
    delta = build("delta_rule", vocab_size=16, seq_len=8, num_kv_pairs=2)
    based = build("based_taylor", vocab_size=16, seq_len=8, num_kv_pairs=2)
    with pytest.raises(RuntimeError, match="need a CUDA device"):
        load_fla_deltanet(delta, device="cpu")
    with pytest.raises(RuntimeError, match="need a CUDA device"):
        load_fla_based(based, device="cpu")
    with pytest.raises(ValueError, match="takes the delta_rule construction"):
        load_fla_deltanet(based, device="cpu")
    with pytest.raises(ValueError, match="mode='parallelx'"):
        load_fla_based(based, device="cpu", mode="parallelx")
    with pytest.raises(ValueError, match="head_k_dim <= 256"):
        load_fla_deltanet(build("delta_rule", vocab_size=300, seq_len=8, num_kv_pairs=2), device="cpu")


def test_normalised_reference_has_the_constructions_argmax() -> None:
    """The float64 reference of fla's normalising layer answers like the construction (a positive rescaling)."""
    con = build("based_taylor", vocab_size=32, seq_len=24, num_kv_pairs=4)
    batch = _batch(32, 24, 4, "zero")
    ref = normalised_lookup_reference(con, batch.inputs)
    pred = con.vocab_size // 2 + (ref @ con.value_codebook().T).argmax(-1)
    assert score(pred, batch).accuracy == 1.0


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("mode", "dtype"),
    [("chunk", torch.bfloat16), ("fused_recurrent", torch.bfloat16), ("fused_recurrent", torch.float32)],
)
@pytest.mark.parametrize(("c", "n", "d", "filler"), [(96, 64, 8, "zero"), (256, 128, 32, "clean")])
def test_fla_deltanet_recalls_exactly(mode: str, dtype: torch.dtype, c: int, n: int, d: int, filler: str) -> None:
    con = build("delta_rule", vocab_size=c, seq_len=n, num_kv_pairs=d)
    model = load_fla_deltanet(con, device="cuda", dtype=dtype, mode=mode)
    batch = _batch(c, n, d, filler)
    pred = model.predict(torch.from_numpy(batch.inputs).cuda()).cpu().numpy()
    assert score(pred, batch).accuracy == 1.0


@pytest.mark.gpu
def test_fla_deltanet_reads_the_ir_lookup() -> None:
    """float32: fla's RMS-normalised reads equal the IR's lookup, RMS-normalised (rows with a read)."""
    con = build("delta_rule", vocab_size=96, seq_len=64, num_kv_pairs=8)
    model = load_fla_deltanet(con, device="cuda", dtype=torch.float32, mode="fused_recurrent")
    batch = _batch(96, 64, 8, "clean", num_examples=4)
    with torch.no_grad():
        got = model(torch.from_numpy(batch.inputs).cuda())[..., : con.code_width].double().cpu().numpy()
    want = con.lookup(batch.inputs)
    rms = np.sqrt((want**2).mean(-1, keepdims=True))
    rows = rms[..., 0] > 0
    assert_close(got[rows], (want / np.where(rms > 0, rms, 1))[rows], dtype="bfloat16", context="DeltaNet reads")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("c", "n", "d"), [(96, 64, 8), (512, 256, 32)])
def test_fla_based_layer_recalls_exactly(dtype: torch.dtype, c: int, n: int, d: int) -> None:
    con = build("based_taylor", vocab_size=c, seq_len=n, num_kv_pairs=d)
    model = load_fla_based(con, device="cuda", dtype=dtype)
    batch = _batch(c, n, d, "zero")
    pred = model.predict(torch.from_numpy(batch.inputs).cuda()).cpu().numpy()
    assert score(pred, batch).accuracy == 1.0


@pytest.mark.gpu
def test_fla_based_layer_matches_the_normalised_reference() -> None:
    con = build("based_taylor", vocab_size=96, seq_len=64, num_kv_pairs=8)
    model = load_fla_based(con, device="cuda", dtype=torch.float32)
    batch = _batch(96, 64, 8, "zero", num_examples=4)
    with torch.no_grad():
        states = model.trace(torch.from_numpy(batch.inputs).cuda())
    got = states[-1][..., model.stream.slice("lookup")].double().cpu().numpy()
    assert_close(got, normalised_lookup_reference(con, batch.inputs), dtype="tfloat32", context="fla Based lookup")
