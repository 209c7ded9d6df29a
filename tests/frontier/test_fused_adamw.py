"""adamw_fused (one Triton kernel per parameter) == adamw_reference (foreach ops) == torch.optim.AdamW.

CPU tests of the reference path and the validation (always run); the kernel under the Triton interpreter on CPU
tensors, in a subprocess with ``TRITON_INTERPRET=1`` (skipped without triton); the compiled kernel on a CUDA GPU
(marked ``gpu``).
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from mqarkit.gpu.frontier.kernels.fused_adamw import adamw_fused, adamw_reference
from mqarkit.tolerances import assert_close

HAS_TRITON = importlib.util.find_spec("triton") is not None
KW = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.1}


def _state(shapes, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    make = [[torch.randn(s, generator=g).to(device) for s in shapes] for _ in range(3)]
    vs = [torch.rand(s, generator=g).to(device) for s in shapes]
    lrs = [torch.full(s, 1e-2, device=device) for s in shapes]
    return make[0], make[1], make[2], vs, lrs


def _scalars(t: int, factor: float, device="cpu") -> torch.Tensor:
    b1, b2 = KW["betas"]
    return torch.tensor([1 / (1 - b1**t), (1 - b2**t) ** -0.5, -factor], dtype=torch.float32, device=device)


def test_reference_matches_torch_adamw_over_three_steps():
    shapes = [(3, 5), (7,), (2, 4, 3)]
    params, _, _, _, _ = _state(shapes)
    ours = [p.clone() for p in params]
    ref = [torch.nn.Parameter(p.clone()) for p in params]
    opt = torch.optim.AdamW(ref, lr=1e-2, **KW)
    ms, vs = [torch.zeros_like(p) for p in ours], [torch.zeros_like(p) for p in ours]
    lrs = [torch.full_like(p, 1e-2) for p in ours]
    g = torch.Generator().manual_seed(1)
    for t in range(1, 4):
        grads = [torch.randn(s, generator=g) for s in shapes]
        for p, gr in zip(ref, grads):
            p.grad = gr.clone()
        opt.step()
        adamw_fused(ours, grads, ms, vs, lrs, _scalars(t, 1.0), **KW)  # CPU: the reference path
    for a, b in zip(ours, ref):
        assert_close(a, b.detach(), dtype="float32", context="adamw vs torch.optim.AdamW")


def test_bad_input():
    params, grads, ms, vs, lrs = _state([(4,)])
    with pytest.raises(ValueError, match="grads"):
        adamw_fused(params, [], ms, vs, lrs, _scalars(1, 1.0), **KW)
    with pytest.raises(ValueError, match="scalars"):
        adamw_fused(params, grads, ms, vs, lrs, torch.zeros(2), **KW)


def _compare(device: str) -> None:
    shapes = [(3, 2100), (5,), (4, 64, 33)]  # not multiples of the block
    a = _state(shapes, device)
    b = [[t.clone() for t in lst] for lst in a]
    for t in (1, 2, 7):
        adamw_fused(a[0], a[1], a[2], a[3], a[4], _scalars(t, 0.75, device), **KW)
        adamw_reference(b[0], b[1], b[2], b[3], b[4], _scalars(t, 0.75, device), **KW)
    for name, x, y in zip(("p", "g", "m", "v"), a, b):
        for i, (u, w) in enumerate(zip(x, y)):
            assert_close(u, w, dtype="float32", context=f"{name}[{i}] kernel vs reference")


@pytest.mark.skipif(not HAS_TRITON, reason="needs triton (its interpreter runs the kernel on CPU tensors)")
def test_kernel_under_interpreter_matches_reference(interpreted):
    interpreted(
        """
        import mqarkit.gpu.frontier.kernels.fused_adamw as fa
        assert fa._INTERPRETED
        from tests.frontier.test_fused_adamw import _compare
        _compare("cpu")
        print("ok")
        """
    )


@pytest.mark.gpu
def test_kernel_on_cuda_matches_reference():
    _compare("cuda")
