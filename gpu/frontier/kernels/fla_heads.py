"""The stacked multi-head layout to fla's and back: the runs folded into fla's batch axis, head widths padded.

Our families compute ``q, k (R, B, N, H, K)`` and ``v (R, B, N, H, V)`` (``R`` stacked runs, ``H`` heads, head-last).
fla's chunked kernels take ``(batch, T, heads, dim)`` ("head-last", not head-first), so the runs fold into the batch:
``(R·B, N, H, K)``, one kernel call for the whole stack. Some of fla's tiles assume a head width of at least 16 (a
``tl.dot`` needs 16 on each side) and at most 256; narrower heads are padded here with zeros, which every recurrence
served here ignores (a zero key or query channel adds nothing; a zero value column gives a zero output column, cut
off again), and wider ones are not served (:func:`head_widths_served`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MIN_WIDTH = 16  # fla's smallest tile side (tl.dot)
MAX_WIDTH = 256  # fla's chunked delta-rule kernels refuse wider heads


def head_widths_served(*widths: int) -> bool:
    """Whether fla's kernels take heads of these (padded) widths: each at most :data:`MAX_WIDTH`."""
    return all(w <= MAX_WIDTH for w in widths)


def fold(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``(R, B, N, H, W)`` -> fla's ``(R·B, N, H, max(W, 16))`` (zero-padded channels), contiguous, in ``dtype``."""
    r, b, n, h, w = x.shape
    x = x.reshape(r * b, n, h, w)
    if w < MIN_WIDTH:
        x = F.pad(x, (0, MIN_WIDTH - w))
    return (x if dtype is None else x.to(dtype)).contiguous()


def fold_heads(x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``(R, B, N, H)`` (one number per head and token: a gate, a β) -> ``(R·B, N, H)``, contiguous, in ``dtype``."""
    r, b, n, h = x.shape
    x = x.reshape(r * b, n, h)
    return (x if dtype is None else x.to(dtype)).contiguous()


def unfold(o: torch.Tensor, runs: int, width: int) -> torch.Tensor:
    """fla's output ``(R·B, N, H, ≥ width)`` -> ``(R, B, N, H, width)`` (the padding columns cut off)."""
    rb, n, h, _ = o.shape
    return o[..., :width].reshape(runs, rb // runs, n, h, width)
