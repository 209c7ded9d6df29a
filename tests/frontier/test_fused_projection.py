"""``ops.fused_projection``: one batched matmul for several per-run projections, its width padded to a multiple of
``PROJECTION_ALIGN``, equal to the separate projections. Integer-valued float64 inputs, so every product and sum is
exact and the comparisons are ``==``."""

from __future__ import annotations

import pytest
import torch

from mqarkit.gpu.frontier.ops import PROJECTION_ALIGN, fused_projection


def _integers(*shape: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(-3, 4, shape, generator=generator).to(torch.float64)


@pytest.mark.parametrize("widths", [(3, 4, 2), (8, 8), (5,), (288, 288, 288, 4)])
def test_fused_projection_equals_the_separate_projections(widths):
    g = torch.Generator().manual_seed(sum(widths))
    u = _integers(2, 3, 5, 6, generator=g).requires_grad_()  # (R, B, N, i)
    weights = [_integers(2, 6, w, generator=g).requires_grad_() for w in widths]
    fused = fused_projection(u, weights)
    separate = [torch.einsum("rbni,rio->rbno", u, w) for w in weights]
    assert [tuple(y.shape) for y in fused] == [(2, 3, 5, w) for w in widths]
    assert all(torch.equal(a, b) for a, b in zip(fused, separate, strict=True))
    # the one output the views share has an aligned width: its row stride
    assert fused[0].stride(-2) == -(-sum(widths) // PROJECTION_ALIGN) * PROJECTION_ALIGN
    probes = [_integers(2, 3, 5, w, generator=g) for w in widths]
    leaves = [u, *weights]
    got = torch.autograd.grad(sum((y * p).sum() for y, p in zip(fused, probes, strict=True)), leaves)
    want = torch.autograd.grad(sum((y * p).sum() for y, p in zip(separate, probes, strict=True)), leaves)
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
