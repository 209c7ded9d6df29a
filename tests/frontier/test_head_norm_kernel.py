"""head_rms_norm (one Triton kernel each way) == head_rms_norm_reference == heads.rms_norm as the delta rules called it.

CPU tests of the reference and the validation (always run); the kernels under the Triton interpreter on CPU tensors, in
a subprocess with ``TRITON_INTERPRET=1`` (skipped without triton), with DeltaNet's and Gated DeltaNet's output norms
on stacks of runs of different widths; the compiled kernels on a CUDA GPU (marked ``gpu``).
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from mqarkit.gpu.frontier.families.heads import per_run, rms_norm
from mqarkit.gpu.frontier.kernels.head_norm import fused_available, head_rms_norm, head_rms_norm_reference
from mqarkit.gpu.frontier.ops import linear
from mqarkit.tolerances import assert_as_accurate_as_reference, assert_close, assert_close_scaled

HAS_TRITON = importlib.util.find_spec("triton") is not None

# (B, N, H, V, the runs' widths, gated): two runs of different widths (the second's channels past 48 are zero), a
# power-of-two width, one odd width, rows that do not fill a tile
CASES = (
    (2, 5, 3, 72, (72, 48), False),
    (2, 5, 3, 72, (72, 48), True),
    (1, 7, 2, 16, (16, 16), True),
    (3, 3, 1, 5, (5, 3), False),
)


def _inputs(b, n, h, v, widths, gated, *, dtype=torch.float64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    r = len(widths)
    pad = (torch.arange(v)[None, :] < torch.tensor(widths)[:, None]).to(torch.float64)  # (R, V) a run's channels
    x = torch.randn(r, b, n, h, v, generator=g, dtype=torch.float64) * pad[:, None, None, None, :]
    w = (1 + 0.3 * torch.randn(r, v, generator=g, dtype=torch.float64)) * pad
    gate = torch.randn(r, b, n, h, v, generator=g, dtype=torch.float64) * pad[:, None, None, None, :] if gated else None
    x, w = (t.to(device, dtype).requires_grad_() for t in (x, w))
    gate = None if gate is None else gate.to(device, dtype).requires_grad_()
    return x, w, torch.tensor(widths, device=device), gate


@pytest.mark.parametrize("b, n, h, v, widths, gated", CASES)
def test_reference_is_the_families_rms_norm(b, n, h, v, widths, gated):
    x, w, widths_t, gate = _inputs(b, n, h, v, widths, gated)
    y = head_rms_norm_reference(x, w, widths_t, gate)
    expected = rms_norm(x, w[:, None, None, None, :], per_run(widths_t, x), gate)
    assert y.dtype == torch.float64 and y.shape == x.shape
    assert_close(y, expected, dtype="float64", context="reference vs rms_norm")
    assert_close(head_rms_norm(x, w, widths_t, gate), y, dtype="float64", context="dispatch on the CPU: the reference")


def test_reference_gradients_pass_gradcheck():
    x, w, widths, gate = _inputs(1, 3, 2, 5, (5, 3), True)
    assert torch.autograd.gradcheck(lambda a, b, c: head_rms_norm_reference(a, b, widths, c), (x, w, gate))
    assert torch.autograd.gradcheck(lambda a, b: head_rms_norm_reference(a, b, widths), (x, w))


def _bad(x, w, widths, gate):
    return [
        ("x", (x[0], w, widths, gate)),
        ("x", (x.long(), w, widths, gate)),
        ("w", (x, w[:, :-1], widths, gate)),
        ("w", (x, w[:1], widths, gate)),
        ("widths", (x, w, widths[:1], gate)),
        ("widths", (x, w, widths.float().requires_grad_(), gate)),
        ("gate", (x, w, widths, gate[..., :-1])),
        ("w: on meta", (x, w.to("meta"), widths, gate)),
        ("widths: on meta", (x, w, widths.to("meta"), gate)),
    ]


@pytest.mark.parametrize("case", range(9))
@pytest.mark.parametrize("fn", [head_rms_norm, head_rms_norm_reference])
def test_bad_input(fn, case):
    x, w, widths, gate = _inputs(2, 3, 2, 8, (8, 4), True, dtype=torch.float32)
    name, args = _bad(x.detach(), w.detach(), widths, gate.detach())[case]
    with pytest.raises(ValueError, match=name):
        fn(*args)


def test_env_switch_takes_the_reference(monkeypatch):
    x, *_ = _inputs(1, 2, 1, 4, (4,), False, dtype=torch.float32)
    monkeypatch.setenv("MQARKIT_FUSED_HEAD_NORM", "0")
    assert not fused_available(x)
    assert not fused_available(x.detach().double())


def _grads(y, leaves, seed=1):
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.autograd.grad(y, leaves, g.to(y.device, y.dtype))


def _compare(device: str, cases=CASES) -> None:
    """The kernels against the reference's autograd in float32, every case."""
    for b, n, h, v, widths, gated in cases:
        x, w, widths_t, gate = _inputs(b, n, h, v, widths, gated, dtype=torch.float32, device=device)
        assert fused_available(x)
        name = f"B={b} N={n} H={h} V={v} widths={widths} gated={gated}"
        leaves = (x, w) if gate is None else (x, w, gate)
        y, ref = head_rms_norm(x, w, widths_t, gate), head_rms_norm_reference(x, w, widths_t, gate)
        assert y.dtype == torch.float32 and y.shape == x.shape
        assert_close(y, ref, dtype="float32", context=f"y, {name}")
        for what, a, e in zip(("dx", "dw", "dgate"), _grads(y, leaves), _grads(ref, leaves)):
            assert_close_scaled(a, e, dtype="float32", context=f"{what}, {name}")


def _family_outputs_equal_the_rule(family: str) -> None:
    """The family's stacked output norm (two runs of different head widths, the narrower zero-padded) against
    ``rms_norm`` in float32, values and gradients."""
    from mqarkit.gpu.frontier.config import ModelConfig
    from mqarkit.gpu.frontier.model import StackedHybrid

    knobs = [{"heads": 2, "head_dim": 3}, {"heads": 1, "head_dim": 5}]
    mixer = StackedHybrid([ModelConfig(family, 32, vocab_size=64, max_len=32, **k) for k in knobs], [1, 2]).mixer
    with torch.no_grad():
        mixer.norm_w.mul_(1.5)
    h, _, v = mixer.padded_widths()
    g = torch.Generator().manual_seed(0)
    u = torch.randn(2, 3, 7, 32, generator=g)
    widths = mixer.value_widths()
    pad = (torch.arange(v)[None, :] < widths[:, None]).float()[:, None, None, None, :]
    o = (torch.randn(2, 3, 7, h, v, generator=g) * pad).requires_grad_()
    y = mixer.output(o, u)
    gate = None  # Gated DeltaNet's output gate, projected here as the family does
    if family == "gated_delta_net":
        gate = linear(u, mixer.masked("g_w").flatten(2)).unflatten(-1, mixer.g_w.shape[-2:])
    expected = rms_norm(o, mixer.masked("norm_w")[:, None, None, None, :], per_run(widths, o), gate)
    assert_close(y, expected, dtype="float32", context=f"{family} output")
    probe = torch.randn(y.shape, generator=g)
    params = [o, mixer.norm_w] + ([mixer.g_w] if gate is not None else [])
    got, want = (torch.autograd.grad((t * probe).sum(), params) for t in (y, expected))
    for a, e in zip(got, want):
        assert_close_scaled(a, e, dtype="float32", context=f"{family} gradient")


@pytest.mark.skipif(not HAS_TRITON, reason="needs triton (its interpreter runs the kernel on CPU tensors)")
def test_kernels_under_interpreter_match_reference(interpreted):
    interpreted(
        """
        import mqarkit.gpu.frontier.kernels.head_norm as hn
        assert hn._INTERPRETED
        from tests.frontier.test_head_norm_kernel import _compare, _family_outputs_equal_the_rule
        _compare("cpu")
        hn.BACKWARD_PROGRAMS = 2  # programs walking several tiles each
        hn.BACKWARD_TILE = 256
        _compare("cpu")
        _family_outputs_equal_the_rule("delta_net")
        _family_outputs_equal_the_rule("gated_delta_net")
        print("ok")
        """
    )


GPU_CASES = (  # (B, N, H, V, the runs' widths, gated)
    (64, 256, 4, 72, (72, 48, 24), False),
    (64, 256, 4, 96, (96, 64, 32), True),
    (16, 1024, 2, 128, (128, 128, 128), True),
)


@pytest.mark.gpu
def test_kernels_on_cuda_match_reference():
    _compare("cuda", cases=GPU_CASES)


@pytest.mark.gpu
def test_kernels_on_cuda_in_bf16_as_accurate_as_reference_and_deterministic():
    for b, n, h, v, widths, gated in GPU_CASES:
        x, w, widths_t, gate = _inputs(b, n, h, v, widths, gated, dtype=torch.float32, device="cuda")
        x16 = x.detach().to(torch.bfloat16).requires_grad_()
        gate16 = None if gate is None else gate.detach().to(torch.bfloat16).requires_grad_()
        name = f"bf16 B={b} N={n} H={h} V={v} gated={gated}"
        leaves = (x, w) if gate is None else (x, w, gate)
        leaves16 = (x16, w) if gate is None else (x16, w, gate16)
        ref = head_rms_norm_reference(x, w, widths_t, gate)  # float32
        low = head_rms_norm_reference(x16, w, widths_t, gate16)  # the plain rule from bf16 inputs
        y = head_rms_norm(x16, w, widths_t, gate16)
        assert y.dtype == torch.bfloat16
        assert_as_accurate_as_reference(y, ref, low, dtype="bfloat16", context=f"y, {name}")
        expected, naive = _grads(ref, leaves), _grads(low, leaves16)
        first, again = _grads(y, leaves16), _grads(head_rms_norm(x16, w, widths_t, gate16), leaves16)
        for what, a, a2, e, lo in zip(("dx", "dw", "dgate"), first, again, expected, naive):
            assert_as_accurate_as_reference(a, e, lo, dtype="bfloat16", context=f"{what}, {name}")
            assert torch.equal(a, a2), f"{what}, {name}: not deterministic"
