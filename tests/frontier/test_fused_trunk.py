"""fused_trunk (Triton kernels for block 0 and LN1a) == trunk_reference (the model's torch operations).

CPU tests of the dispatch and the query-slot map (always run); the kernels under the Triton interpreter on CPU
tensors, in a subprocess with ``TRITON_INTERPRET=1`` (skipped without triton): values and every parameter's gradient
in float32, odd widths, 1 to 4 filter taps, repeated query positions, and ``hidden_at`` through the kernels against
``hidden_at`` without them for the five families; on a CUDA GPU (marked ``gpu``): the same in float32, and the
training loss and gradients under bf16 autocast.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from mqarkit.gpu.frontier.config import ModelConfig
from mqarkit.gpu.frontier.kernels.fused_trunk import (
    PARAMS,
    _query_slots,
    fused_trunk,
    fused_trunk_available,
    trunk_reference,
)
from mqarkit.gpu.frontier.model import StackedHybrid
from mqarkit.tolerances import assert_close, assert_close_scaled

HAS_TRITON = importlib.util.find_spec("triton") is not None
FAMILIES = {
    "based": {"feature_dim": 4},
    "sliding_window": {"window": 3},
    "mamba2": {"d_state": 4},
    "attention": {},
    "long_conv": {},
}


def _model(device, *, d=12, runs=2, taps=3, family="based", vocab=40, seed=0) -> StackedHybrid:
    kw = FAMILIES[family]
    cfgs = [ModelConfig(family, d, vocab_size=vocab, max_len=64, conv_kernel=taps, **kw) for _ in range(runs)]
    model = StackedHybrid(cfgs, list(range(runs)), device)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # move every parameter off its initial value (LN weights 1, biases 0)
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g).to(device))
    return model


def _batch(device, *, b=3, n=7, dq=2, vocab=40, repeat=False, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab, (b, n), generator=g)
    x[:, :3] = 0  # repeated tokens, as MQAR's padding
    qpos = torch.stack([torch.randperm(n, generator=g)[:dq] for _ in range(b)]).sort(1).values
    if repeat:
        qpos[:, -1] = qpos[:, 0]
    return x.to(device), qpos.to(device)


def compare_trunk(device: str, **shape) -> None:
    """Values of ``u, r`` and the gradient of every trunk parameter, kernels against the reference (float32)."""
    batch = {k: shape.pop(k) for k in ("b", "n", "dq", "repeat") if k in shape}
    model = _model(device, **shape)
    x, qpos = _batch(device, **batch)
    g = torch.Generator().manual_seed(2)
    d, runs = model.d, model.runs
    g_u = torch.randn(runs, *x.shape, d, generator=g).to(device)
    g_r = torch.randn(runs, qpos.numel(), d, generator=g).to(device)
    out = {}
    for name, fn in (("kernels", fused_trunk), ("reference", trunk_reference)):
        model.zero_grad()
        u, r_q = fn(model, x, qpos)
        ((u * g_u).sum() + (r_q * g_r).sum()).backward()
        out[name] = (u.detach(), r_q.detach(), [getattr(model, p).grad.clone() for p in ("emb", *PARAMS)])
    (u1, r1, g1), (u0, r0, g0) = out["kernels"], out["reference"]
    assert_close(u1, u0, dtype="float32", context=f"u {shape}")
    assert_close(r1, r0, dtype="float32", context=f"r at the query rows {shape}")
    for name, a, b in zip(("emb", *PARAMS), g1, g0):
        assert_close_scaled(a, b, dtype="float32", context=f"gradient of {name} {shape}")


def compare_hidden_at(device: str, family: str) -> None:
    """``hidden_at`` with the fused trunk against ``hidden_at`` without it: values and all gradients (float32)."""
    model = _model(device, d=32 if family == "mamba2" else 12, family=family)
    x, qpos = _batch(device, b=3, n=9, dq=2)
    g = torch.randn(model.runs, qpos.numel(), model.d, generator=torch.Generator().manual_seed(4)).to(device)
    out = {}
    for flag in ("1", "0"):
        os.environ["MQARKIT_FUSED_TRUNK"] = flag
        try:
            model.zero_grad()
            rows = model.hidden_at(x, qpos)
            (rows * g).sum().backward()
        finally:
            del os.environ["MQARKIT_FUSED_TRUNK"]
        out[flag] = (rows.detach(), [p.grad.clone() for p in model.parameters()])
    assert_close(out["1"][0], out["0"][0], dtype="float32", context=f"{family} hidden_at")
    for (name, _), a, b in zip(model.named_parameters(), out["1"][1], out["0"][1]):
        # The trunk's parameters at float32: what the kernels compute. The mixer's own parameters see the kernels'
        # float32 rounding of u (about 1e-7) through the mixer's conditioning: mamba2's gradient of its 2-entry
        # `skip` is 5e-5 of its scale off float64 even without the kernels, so the tf32 row of the table there.
        dtype = "tfloat32" if name.startswith("mixer.") else "float32"
        assert_close_scaled(a, b, dtype=dtype, context=f"{family} gradient of {name}")


def test_query_slots_map_rows_and_repeated_positions():
    qpos = torch.tensor([[1, 3], [2, 2]])
    qrow, canon = _query_slots(qpos, 4)
    assert qrow.tolist() == [-1, 0, -1, 1, -1, -1, int(qrow[6]), -1]
    assert int(qrow[6]) in (2, 3)  # row 1·4 + 2 is named by slots 2 and 3: one of them is written
    assert canon.tolist() == [0, 1, int(qrow[6]), int(qrow[6])]


def test_not_available_on_cpu_without_the_interpreter():
    model = _model("cpu")
    assert not fused_trunk_available(model.emb, 3) or os.environ.get("TRITON_INTERPRET") == "1"
    if not fused_trunk_available(model.emb, 3):
        x, qpos = _batch("cpu")
        with pytest.raises(ValueError, match="fused_trunk"):
            fused_trunk(model, x, qpos)


@pytest.mark.skipif(not HAS_TRITON, reason="needs triton (its interpreter runs the kernels on CPU tensors)")
def test_kernels_under_interpreter_match_reference(interpreted):
    interpreted(
        """
        import mqarkit.gpu.frontier.kernels.fused_trunk as ft
        assert ft._INTERPRETED
        from tests.frontier.test_fused_trunk import FAMILIES, _batch, _model, compare_hidden_at, compare_trunk
        compare_trunk("cpu")                                    # d = 12 (padded to 16), 3 taps
        compare_trunk("cpu", d=16, taps=1, n=5)
        compare_trunk("cpu", d=8, taps=4, n=3, dq=2, repeat=True)  # sequences shorter than the filter; repeats
        compare_trunk("cpu", d=20, runs=3, b=2, n=40, dq=5)     # several row blocks per sequence
        blocks, ft.ROW_BLOCKS = ft.ROW_BLOCKS, 1                 # one block per backward program: many partial sums
        compare_trunk("cpu", d=20, runs=3, b=2, n=40, dq=5)
        ft.ROW_BLOCKS = blocks
        for family in FAMILIES:
            compare_hidden_at("cpu", family)
        model = _model("cpu")
        x, qpos = _batch("cpu")
        for bad, name in ((x + 40, "x"), (x, "qpos")):
            try:
                ft.fused_trunk(model, bad, qpos + 7 if name == "qpos" else qpos)
            except ValueError as exc:
                assert name in str(exc), exc
            else:
                raise AssertionError(f"out-of-range {name} accepted")
        print("ok")
        """,
        timeout=900,
    )


@pytest.mark.gpu
def test_kernels_on_cuda_match_reference_float32():
    compare_trunk("cuda", d=48, b=4, n=64, dq=8)
    compare_trunk("cuda", d=128, runs=3, b=2, n=100, dq=5, repeat=True)


@pytest.mark.gpu
@pytest.mark.parametrize("family", list(FAMILIES))
def test_training_loss_and_gradients_on_cuda_match_reference_bf16(family, monkeypatch):
    from mqarkit.gpu.frontier.data import Segment, mqar_batch
    from mqarkit.gpu.frontier.steps import SegmentData, query_loss

    device = torch.device("cuda")
    kw = {**FAMILIES[family], **({"feature_dim": 16} if family == "based" else {})}
    cfgs = [ModelConfig(family, 64, vocab_size=256, max_len=256, **kw) for _ in range(2)]
    model = StackedHybrid(cfgs, [0, 1], device)
    gen = torch.Generator().manual_seed(3)
    seg = SegmentData(Segment(128, 8, 32), *(t.to(device) for t in mqar_batch(256, 128, 8, 32, generator=gen)))
    params = list(model.parameters())
    out = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("MQARKIT_FUSED_TRUNK", flag)
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            loss = query_loss(model, seg.inputs, seg.qpos, seg.targets, seg.qpos.numel())
        out[flag] = (loss.detach().float(), torch.autograd.grad(loss, params))
    assert_close(out["1"][0], out["0"][0], dtype="bfloat16", context=f"{family} loss")
    for (name, _), a, b in zip(model.named_parameters(), out["1"][1], out["0"][1]):
        assert_close_scaled(a, b, dtype="bfloat16", context=f"{family} gradient of {name}")
