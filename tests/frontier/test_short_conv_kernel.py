"""short_conv_heads (one Triton kernel each way) == short_conv_heads_reference (F.pad shifts, autograd) == the eager
chain DeltaNet ran before (heads.short_conv, heads.l2_normalize, the scale).

CPU tests of the reference and the validation (always run); the kernels under the Triton interpreter on CPU tensors, in
a subprocess with ``TRITON_INTERPRET=1`` (skipped without triton), with DeltaNet's and Gated DeltaNet's fast-path
inputs (fla's check forced) against their other path; the compiled kernels on a CUDA GPU (marked ``gpu``).
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from mqarkit.gpu.frontier.families.heads import l2_normalize, short_conv
from mqarkit.gpu.frontier.kernels.short_conv import (
    _row_stride,
    fused_available,
    short_conv_heads,
    short_conv_heads_reference,
)
from mqarkit.tolerances import assert_as_accurate_as_reference, assert_close, assert_close_scaled

HAS_TRITON = importlib.util.find_spec("triton") is not None

# (C, K, T, N, with scale, as a split view): no heads; K = 24 in a 32-wide block, two runs' scales; a split view;
# N < T (with and without heads); T = 3; T = 2 with odd 3-wide heads
CASES = (
    (48, None, 4, 9, False, False),
    (48, 24, 4, 9, True, False),
    (48, 24, 3, 9, False, True),
    (48, None, 4, 2, True, True),
    (48, 16, 4, 3, True, False),
    (40, None, 3, 9, False, False),
    (48, 3, 2, 5, True, False),
)


def _inputs(r, b, n, c, taps, *, with_scale, split, dtype=torch.float64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    x_leaf = torch.randn(r, b, n, c, generator=g, dtype=torch.float64).to(device, dtype).requires_grad_()
    w = (torch.rand(r, c, taps, generator=g, dtype=torch.float64) - 0.5).to(device, dtype).requires_grad_()
    scale = torch.tensor([0.25, 0.5, 0.125][:r], dtype=dtype, device=device) if with_scale else None
    x = x_leaf
    if split:  # a middle slice of a wider contiguous tensor, as ops.fused_projection returns
        wide = torch.cat([torch.zeros_like(x_leaf[..., :5]), x_leaf, torch.zeros_like(x_leaf[..., :7])], -1)
        x = wide.split([5, c, 7], dim=-1)[1]
        assert not x.is_contiguous() and _row_stride(x) == c + 12
    return x_leaf, x, w, scale


def _eager_chain(x, w, scale, head_width):
    y = short_conv(x, w)
    if head_width is not None:
        y = l2_normalize(y.unflatten(-1, (-1, head_width))).flatten(-2)
    return y if scale is None else y * scale[:, None, None, None]


@pytest.mark.parametrize("c, k, taps, n, with_scale, split", CASES)
def test_reference_equals_the_eager_chain(c, k, taps, n, with_scale, split):
    x_leaf, x, w, scale = _inputs(2, 2, n, c, taps, with_scale=with_scale, split=split)
    y = short_conv_heads_reference(x, w, scale, k)
    assert y.dtype == torch.float64 and y.shape == x.shape
    assert_close(y, _eager_chain(x, w, scale, k), dtype="float64", context="reference vs eager chain")
    assert_close(short_conv_heads(x, w, scale, k), y, dtype="float64", context="dispatch on the CPU: the reference")


def test_reference_returns_x_dtype_computing_in_float32():
    _, x, w, scale = _inputs(2, 1, 6, 8, 4, with_scale=True, split=False, dtype=torch.float32)
    x16 = x.detach().to(torch.bfloat16)
    y = short_conv_heads_reference(x16, w, scale, 4)
    assert y.dtype == torch.bfloat16
    expected = _eager_chain(x16.float(), w, scale, 4).to(torch.bfloat16)  # the chain's float32, one rounding
    assert_close(y, expected, dtype="bfloat16", context="bf16 input")


def test_reference_gradients_pass_gradcheck():
    _, x, w, scale = _inputs(2, 1, 5, 6, 3, with_scale=True, split=False)
    assert torch.autograd.gradcheck(lambda a, b: short_conv_heads_reference(a, b, scale, 3), (x, w))
    assert torch.autograd.gradcheck(lambda a, b: short_conv_heads_reference(a, b), (x, w))


def _bad(x, w, scale, k):
    return [
        ("x", (x[0], w, scale, k)),
        ("x", (x.long(), w, scale, k)),
        ("w", (x, w[:, :-1], scale, k)),
        ("w", (x, w[:1], scale, k)),
        ("w: needs 1 <= T <= 4", (x, torch.cat([w, w[..., :1]], -1), scale, k)),
        ("w: needs 1 <= T <= 4", (x, w[..., :0], scale, k)),
        ("head_width", (x, w, scale, 5)),
        ("head_width", (x, w, scale, 0)),
        ("scale", (x, w, torch.ones(3), k)),
        ("scale: gets no gradient", (x, w, torch.ones(2, requires_grad=True), k)),
        ("w: on meta", (x, w.to("meta"), scale, k)),
        ("scale: on meta", (x, w, torch.ones(2, device="meta"), k)),
    ]


@pytest.mark.parametrize("case", range(12))
@pytest.mark.parametrize("fn", [short_conv_heads, short_conv_heads_reference])
def test_bad_input(fn, case):
    _, x, w, scale = _inputs(2, 2, 5, 48, 4, with_scale=True, split=False, dtype=torch.float32)
    name, args = _bad(x.detach(), w.detach(), scale, 24)[case]
    with pytest.raises(ValueError, match=name):
        fn(*args)


def test_env_switch_takes_the_reference(monkeypatch):
    _, x, w, _ = _inputs(1, 1, 4, 8, 4, with_scale=False, split=False, dtype=torch.float32)
    monkeypatch.setenv("MQARKIT_FUSED_SHORT_CONV", "0")
    assert not fused_available(x, 4)
    assert not fused_available(x.double(), 4)  # float64: the reference wherever it runs


def _grads(y, x_leaf, w, seed=1):
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.autograd.grad(y, (x_leaf, w), g.to(y.device, y.dtype))


def _compare(device: str, r: int = 2, b: int = 2, cases=CASES) -> None:
    """The kernels against the reference's autograd in float32, every case."""
    for c, k, taps, n, with_scale, split in cases:
        x_leaf, x, w, scale = _inputs(r, b, n, c, taps, with_scale=with_scale, split=split, dtype=torch.float32,
                                      device=device)  # fmt: skip
        assert fused_available(x, k)
        name = f"C={c} K={k} T={taps} N={n} scale={with_scale} split={split}"
        y, ref = short_conv_heads(x, w, scale, k), short_conv_heads_reference(x, w, scale, k)
        assert y.is_contiguous() and y.dtype == torch.float32
        assert_close(y, ref, dtype="float32", context=f"y, {name}")
        for what, a, e in zip(("dx", "dw"), _grads(y, x_leaf, w), _grads(ref, x_leaf, w)):
            assert_close_scaled(a, e, dtype="float32", context=f"{what}, {name}")


def _fast_inputs_equal_eager_inputs(family: str) -> None:
    """DeltaNet's ``inputs`` on its fast path (fla's check forced true; float32, on the CPU) against its other path:
    two runs of different head counts and widths (``K = 3`` padded into 5 with zero channels, one head padded)."""
    from mqarkit.gpu.frontier.config import ModelConfig
    from mqarkit.gpu.frontier.model import StackedHybrid

    knobs = [{"heads": 2, "head_dim": 3}, {"heads": 1, "head_dim": 5}]
    mixer = StackedHybrid([ModelConfig(family, 32, vocab_size=64, max_len=32, **k) for k in knobs], [1, 2]).mixer
    with torch.no_grad():
        for p in mixer.parameters():
            p.mul_(3)
    u = torch.randn(2, 3, 11, 32, generator=torch.Generator().manual_seed(0), requires_grad=True)
    params = [u, *(p for n, p in mixer.named_parameters() if n.split(".")[-1] in ("q_w", "k_w", "v_w") or "conv" in n)]
    outs = {}
    for fast in (False, True):
        if fast:
            mixer.fla_serves = lambda device, dtype: True
        *qkv, beta, work, served = mixer.inputs(u)
        assert served is fast and work == torch.float32
        probe = [torch.randn(t.shape, generator=torch.Generator().manual_seed(i)) for i, t in enumerate(qkv)]
        outs[fast] = qkv, torch.autograd.grad(sum((t * p).sum() for t, p in zip(qkv, probe)), params)
    for what, a, e in zip("qkv", outs[True][0], outs[False][0]):
        assert_close(a, e, dtype="float32", context=f"{family} {what}")
    for i, (a, e) in enumerate(zip(outs[True][1], outs[False][1])):
        assert_close_scaled(a, e, dtype="float32", context=f"{family} gradient {i}")


@pytest.mark.skipif(not HAS_TRITON, reason="needs triton (its interpreter runs the kernel on CPU tensors)")
def test_kernels_under_interpreter_match_reference(interpreted):
    interpreted(
        """
        import mqarkit.gpu.frontier.kernels.short_conv as sc
        assert sc._INTERPRETED
        from tests.frontier.test_short_conv_kernel import CASES, _compare, _fast_inputs_equal_eager_inputs
        _compare("cpu")
        for block in (0, 1024):  # with heads, both backwards: dz read from _dz_kernel; recomputed in one kernel
            sc.RECOMPUTE_HEAD_BLOCK = block
            _compare("cpu", cases=[case for case in CASES if case[1] is not None])
        _fast_inputs_equal_eager_inputs("delta_net")
        _fast_inputs_equal_eager_inputs("gated_delta_net")
        print("ok")
        """
    )


GPU_CASES = (  # (C, K, T, N, with scale, as a split view)
    (288, 72, 4, 300, True, True),
    (256, 64, 4, 257, False, False),
    (200, None, 4, 300, False, True),
    (256, 128, 3, 64, True, False),
)


@pytest.mark.gpu
@pytest.mark.parametrize("recompute_head_block", [0, 1024])  # with heads: dz read from _dz_kernel; recomputed
def test_kernels_on_cuda_match_reference(recompute_head_block, monkeypatch):
    import mqarkit.gpu.frontier.kernels.short_conv as sc

    monkeypatch.setattr(sc, "RECOMPUTE_HEAD_BLOCK", recompute_head_block)
    _compare("cuda", r=3, b=4, cases=GPU_CASES)


@pytest.mark.gpu
def test_kernels_on_cuda_in_bf16_as_accurate_as_reference_and_deterministic():
    for c, k, taps, n, with_scale, split in GPU_CASES:
        x_leaf, x, w, scale = _inputs(3, 4, n, c, taps, with_scale=with_scale, split=split, dtype=torch.float32,
                                      device="cuda")  # fmt: skip
        x16_leaf = x_leaf.detach().to(torch.bfloat16).requires_grad_()
        x16 = x16_leaf
        if split:
            x16 = torch.cat([x16_leaf, torch.zeros_like(x16_leaf[..., :8])], -1).split([c, 8], -1)[0]
        name = f"bf16 C={c} K={k} T={taps} N={n}"
        ref = short_conv_heads_reference(x, w, scale, k)  # float32
        low = short_conv_heads_reference(x16, w, scale, k)  # the naive form from bf16 inputs
        y = short_conv_heads(x16, w, scale, k)
        assert y.dtype == torch.bfloat16
        assert_as_accurate_as_reference(y, ref, low, dtype="bfloat16", context=f"y, {name}")
        expected, naive = _grads(ref, x_leaf, w), _grads(low, x16_leaf, w)
        first, again = _grads(y, x16_leaf, w), _grads(short_conv_heads(x16, w, scale, k), x16_leaf, w)
        for what, a, a2, e, lo in zip(("dx", "dw"), first, again, expected, naive):
            assert_as_accurate_as_reference(a, e, lo, dtype="bfloat16", context=f"{what}, {name}")
            assert torch.equal(a, a2), f"{what}, {name}: not deterministic"
