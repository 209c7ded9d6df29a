"""Every registered family on a CUDA GPU against its naive reference: float32, and bf16 under autocast as in
training; values and gradients, whole sequence and query rows. Marked ``gpu`` (CI has no GPU)."""

from __future__ import annotations

import contextlib

import pytest
import torch
from cuda_knobs import CUDA_KNOBS, CUDA_WIDTH

from mqarkit.gpu.frontier.config import ModelConfig
from mqarkit.gpu.frontier.model import StackedHybrid
from mqarkit.gpu.frontier.ops import gather_rows
from mqarkit.tolerances import assert_as_accurate_as_reference

pytestmark = pytest.mark.gpu

D, KNOBS = CUDA_WIDTH, CUDA_KNOBS


def _mixer(family: str):
    configs = [ModelConfig(family, D, vocab_size=256, max_len=256, **k) for k in KNOBS[family]]
    model = StackedHybrid(configs, [0, 1], "cuda")
    with torch.no_grad():  # ×3, so outputs and gradients are not tiny (as in the CPU tests)
        for p in model.mixer.parameters():
            p.mul_(3)
    return model.mixer


@contextlib.contextmanager
def precision(name: str):
    """The naive reference run in the fast path's working precision: ``"float32"`` exact float32 (torch's default
    for matmuls), ``"tfloat32"`` matmuls in tf32 (as fla's tiles compute float32 products), ``"bfloat16"`` under
    bf16 autocast (as training runs)."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = name == "tfloat32"
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=name == "bfloat16", cache_enabled=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


@pytest.mark.parametrize("family", sorted(KNOBS))
@pytest.mark.parametrize("amp", [False, True], ids=["float32", "bf16"])
def test_family_on_cuda_equals_reference(family, amp):
    """Values and gradients (whole sequence and query rows) against the float32 reference, relative to each tensor's
    scale, under the low-precision rule of :func:`~mqarkit.tolerances.assert_as_accurate_as_reference`: within the
    row of the fast path's working precision (float32 inputs: tf32, the precision of fla's tiles and of
    ``tl.dot``; bf16 autocast: bf16), or else no further from float32 than twice the naive reference run in that
    precision (an entry where terms of the tensor's scale cancel carries their rounding)."""
    working = "bfloat16" if amp else "tfloat32"
    mixer = _mixer(family)
    g = torch.Generator("cuda").manual_seed(0)
    u = torch.randn(2, 3, 200, D, generator=g, device="cuda", requires_grad=True)
    qpos = torch.tensor([[0, 57, 199], [3, 3, 150], [10, 120, 121]], device="cuda")
    params = [u, *mixer.parameters()]
    names = ["u", *(n for n, _ in mixer.named_parameters())]
    probe = torch.randn(2, 3, 200, D, generator=g, device="cuda")

    def reference(name: str) -> list[torch.Tensor]:
        with precision(name):  # the backward in that precision too
            ref = torch.stack([mixer.reference(r, u[r]) for r in range(2)]).float()
            return [ref, gather_rows(ref, qpos), *torch.autograd.grad((ref * probe).sum(), params)]

    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp, cache_enabled=False):
        fast, at = mixer(u), mixer.forward_at(u, qpos)
    got = [fast.float(), at.float(), *torch.autograd.grad((fast.float() * probe).sum(), params)]
    what = ["values", "query rows", *(f"gradient of {name}" for name in names)]
    failures = []  # every tensor checked, the failures reported together: which gradients fail says which kernel
    for actual, expected, low, w in zip(got, reference("float32"), reference(working), what, strict=True):
        try:
            assert_as_accurate_as_reference(actual, expected, low, dtype=working, context=f"{family} {w}")
        except AssertionError as failure:
            failures.append(str(failure).split("\n")[0][:400])
    assert not failures, f"{len(failures)} of {len(what)} tensors:\n" + "\n".join(failures)
