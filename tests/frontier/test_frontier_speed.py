"""Tests of the fast paths of the frontier harness (CPU): each equals the direct form it replaces."""

from __future__ import annotations

import pytest
import torch

from mqarkit.gpu.frontier.config import ModelConfig
from mqarkit.gpu.frontier.kernels.taylor_attention import _TaylorAttention, taylor_attention, taylor_kernel
from mqarkit.gpu.frontier.model import StackedHybrid
from mqarkit.gpu.frontier.ops import causal_depthwise_conv
from mqarkit.tolerances import assert_close


def _qkv(dtype, r=2, b=3, n=9, f=4, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(r, b, n, w, generator=g, dtype=dtype, requires_grad=True) for w in (f, f, d)]


def test_taylor_attention_gradcheck_float64():
    q, k, v = _qkv(torch.float64)
    assert torch.autograd.gradcheck(_TaylorAttention.apply, (q, k, v))


@pytest.mark.parametrize("n", [1, 2, 17])
def test_taylor_attention_equals_direct_quadratic_form(n):
    q, k, v = _qkv(torch.float64, n=n, seed=n)
    a = taylor_kernel(q, k, torch.ones(q.shape[0], dtype=q.dtype)).tril()  # (R, B, N, N)
    ref = a @ v / (a.sum(-1, keepdim=True) + 1e-12)  # the model's definition, epsilon included
    out = taylor_attention(q, k, v)
    assert_close(out, ref, dtype="float64", context=f"forward n={n}")
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(9), dtype=out.dtype)
    for t, name in zip(torch.autograd.grad(out, (q, k, v), g), "qkv"):
        ref_grad = torch.autograd.grad(ref, {"q": q, "k": k, "v": v}[name], g, retain_graph=True)[0]
        assert_close(t, ref_grad, dtype="float64", context=f"grad {name} n={n}")


def test_causal_depthwise_conv_equals_definition():
    g = torch.Generator().manual_seed(2)
    u, w, b = torch.randn(2, 3, 6, 4, generator=g), torch.randn(2, 4, 3, generator=g), torch.randn(2, 4, generator=g)
    ref = torch.zeros_like(u)
    for t in range(6):
        ref[:, :, t] = b[:, None] + sum(w[:, None, :, s] * u[:, :, t - s] for s in range(3) if t - s >= 0)
    assert_close(causal_depthwise_conv(u, w, b), ref, dtype="float32", context="conv")
    short = causal_depthwise_conv(u[:, :, :2], w, b)  # kernel longer than the sequence
    assert_close(short, ref[:, :, :2], dtype="float32", context="conv n < k")


def test_stacked_embedding_equals_indexing_and_its_gradient():
    cfgs = [ModelConfig("attention", 8, vocab_size=16, max_len=8)] * 3
    model = StackedHybrid(cfgs, [4, 5, 6])
    x = torch.zeros(5, 7, dtype=torch.long)  # mostly one repeated token, as MQAR inputs are
    x[:, ::3] = torch.randint(0, 16, (5, 3), generator=torch.Generator().manual_seed(3))
    fast = model.embed(x)
    ref = model.emb[:, x]
    assert torch.equal(fast, ref)
    g = torch.randn(fast.shape, generator=torch.Generator().manual_seed(4))
    (ga,) = torch.autograd.grad(fast, model.emb, g)
    (gb,) = torch.autograd.grad(ref, model.emb, g)
    assert_close(ga, gb, dtype="float32", context="embedding grad")


def _benchmark_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "frontier_speed.py"
    spec = importlib.util.spec_from_file_location("frontier_speed_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_utilisation_sampler_samples_only_inside_its_window():
    import time

    bench = _benchmark_module()
    sampler = bench.UtilSampler(period=0.005, query=lambda: 50.0)
    sampler.start()
    try:
        time.sleep(0.05)
        assert sampler.samples == []  # inactive: nothing sampled
        first = sampler.activate()
        time.sleep(0.2)
        sampler.active.clear()
        time.sleep(0.05)  # a sample in flight when the window closed has landed by now
        taken = len(sampler.samples)
        time.sleep(0.05)
        assert len(sampler.samples) == taken > 0
        assert sampler.burst_mean(first, settle=0.0) == 50.0
        assert sampler.burst_mean(first, settle=60.0) is None  # every sample fell in the settling time
    finally:
        sampler.stop_flag.set()
    weighted = bench._step_weighted_util(
        [
            {"steps_per_epoch": 3, "median_step_s": 1.0, "gpu_util": 90.0},
            {"steps_per_epoch": 1, "median_step_s": 1.0, "gpu_util": 50.0},
            {"steps_per_epoch": 5, "median_step_s": 1.0, "gpu_util": None},
        ]
    )
    assert weighted == 80.0
