"""Every registered family on a CUDA GPU against its naive reference: float32, and bf16 under autocast as in
training; values and gradients, whole sequence and query rows. Marked ``gpu`` (CI has no GPU)."""

from __future__ import annotations

import pytest
import torch
from cuda_knobs import CUDA_KNOBS, CUDA_WIDTH

from mqarkit.gpu.frontier.config import ModelConfig
from mqarkit.gpu.frontier.model import StackedHybrid
from mqarkit.gpu.frontier.ops import gather_rows
from mqarkit.tolerances import assert_as_accurate_as_reference, assert_close_scaled

pytestmark = pytest.mark.gpu

D, KNOBS = CUDA_WIDTH, CUDA_KNOBS


def _mixer(family: str):
    configs = [ModelConfig(family, D, vocab_size=256, max_len=256, **k) for k in KNOBS[family]]
    model = StackedHybrid(configs, [0, 1], "cuda")
    with torch.no_grad():  # ×3, so outputs and gradients are not tiny (as in the CPU tests)
        for p in model.mixer.parameters():
            p.mul_(3)
    return model.mixer


@pytest.mark.parametrize("family", sorted(KNOBS))
@pytest.mark.parametrize("amp", [False, True], ids=["float32", "bf16"])
def test_family_on_cuda_equals_reference(family, amp):
    """float32: fla's tiles, SDPA's and cuBLAS's kernels sum in their own orders, so the tf32 row of the table (scaled
    to each tensor's largest entry), against the float32 reference. bf16 (autocast, as in training): the bf16 row
    against the float32 reference, or, where the function is ill-conditioned in bf16's rounding, the low-precision
    rule of :func:`~mqarkit.tolerances.assert_as_accurate_as_reference` against the naive reference run under the
    same autocast (close to it, and at most twice as far from float32)."""
    mixer = _mixer(family)
    g = torch.Generator("cuda").manual_seed(0)
    u = torch.randn(2, 3, 200, D, generator=g, device="cuda", requires_grad=True)
    qpos = torch.tensor([[0, 57, 199], [3, 3, 150], [10, 120, 121]], device="cuda")
    params = [u, *mixer.parameters()]
    names = ["u", *(n for n, _ in mixer.named_parameters())]
    probe = torch.randn(2, 3, 200, D, generator=g, device="cuda")

    def reference(low_precision: bool):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=low_precision, cache_enabled=False):
            ref = torch.stack([mixer.reference(r, u[r]) for r in range(2)]).float()
        return ref, torch.autograd.grad((ref * probe).sum(), params)

    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp, cache_enabled=False):
        fast, at = mixer(u), mixer.forward_at(u, qpos)
    got = torch.autograd.grad((fast.float() * probe).sum(), params)
    ref, want = reference(False)
    checks = [(fast.float(), ref, "values"), (at.float(), gather_rows(ref, qpos), "query rows")]
    checks += [(a, b, f"gradient of {name}") for name, a, b in zip(names, got, want)]
    if not amp:
        for actual, expected, what in checks:
            assert_close_scaled(actual, expected, dtype="tfloat32", context=f"{family} {what}")
        return
    ref_low, want_low = reference(True)
    lows = [ref_low, gather_rows(ref_low, qpos), *want_low]
    for (actual, expected, what), low in zip(checks, lows):
        assert_as_accurate_as_reference(actual, expected, low, dtype="bfloat16", context=f"{family} {what}")
