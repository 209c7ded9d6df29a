"""The stacked multi-head layout to fla's and back: the runs folded into fla's batch axis, head widths padded.

Our families compute ``q, k (R, B, N, H, K)`` and ``v (R, B, N, H, V)`` (``R`` stacked runs, ``H`` heads, head-last).
fla's chunked kernels take ``(batch, T, heads, dim)`` ("head-last", not head-first), so the runs fold into the batch:
``(R·B, N, H, K)``, one kernel call for the whole stack. Some of fla's tiles assume a head width of at least 16 (a
``tl.dot`` needs 16 on each side) and at most 256; narrower heads are padded here with zeros, which every recurrence
served here ignores (a zero key or query channel adds nothing; a zero value column gives a zero output column, cut
off again), and wider ones are not served (:func:`head_widths_served`). A stack whose runs differ in their heads'
count or widths can call fla once per group of runs of the same widths (:class:`WidthGroups`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


# ---------------------------------------------------------------------------------------------- runs grouped by width
@dataclass(frozen=True)
class WidthGroups:
    """A stack's runs grouped by their own head counts and widths ``(H, K, V)``, for one fla call per group at its
    widths instead of one call at the stack's padded ones. fla's tiles round ``K`` and ``V`` up to a power of two (at
    least 16, at most 64 a tile) and its delta-rule state kernel ``K`` to blocks of 64, so padding costs more than its
    own share: a stack of ``K = V = 24, 48, 72`` padded to 72 computes every run at 128 (two blocks), where its runs
    alone take 32, 64 and 128. A run's padded heads and channels are zero (masked weights), and zero keys, queries and
    values add nothing to any recurrence served here, so cutting them off is exact.

    ``order``: the stack's runs group after group (in the order each group first appears, the runs of a group in
    stack order); ``sizes``: the runs per group; ``widths``: each group's ``(H, K, V)``."""

    order: tuple[int, ...]
    sizes: tuple[int, ...]
    widths: tuple[tuple[int, int, int], ...]

    @property
    def in_order(self) -> bool:
        """Whether the groups already lie in stack order (``order`` the identity): a sweep's stacks list each model's
        runs together (:meth:`~mqarkit.gpu.frontier.sweep.SweepConfig.runs`), so runs of one width are adjacent and
        no gather is needed."""
        return self.order == tuple(range(len(self.order)))

    @property
    def unorder(self) -> tuple[int, ...]:
        """The inverse of ``order``: where each run of the stack sits among the groups."""
        inverse = [0] * len(self.order)
        for position, run in enumerate(self.order):
            inverse[run] = position
        return tuple(inverse)


# a stack's groups with ``order`` and its inverse as int64 tensors on the stack's device (kept by the family as
# buffers, so that no index reaches the device per step: CUDA graphs), as the fla calls take them
GroupsOnDevice = tuple[WidthGroups, torch.Tensor, torch.Tensor]


def width_groups(run_widths: Sequence[tuple[int, int, int]]) -> WidthGroups | None:
    """The runs' ``(H, K, V)`` -> their :class:`WidthGroups`, or None where every run has the same widths (one call
    at the stack's widths, as without groups)."""
    by_width: dict[tuple[int, int, int], list[int]] = {}
    for run, widths in enumerate(run_widths):
        by_width.setdefault(tuple(widths), []).append(run)
    if len(by_width) < 2:
        return None
    return WidthGroups(
        order=tuple(run for runs in by_width.values() for run in runs),
        sizes=tuple(len(runs) for runs in by_width.values()),
        widths=tuple(by_width),
    )


def call_by_width_group(
    call: Callable[..., torch.Tensor],
    on_device: GroupsOnDevice | None,
    per_channel: Sequence[torch.Tensor],
    per_head: Sequence[torch.Tensor | None],
) -> torch.Tensor:
    """``call`` once per group of ``on_device``'s groups on that group's runs at its widths -> the stack's output
    ``(R, B, N, H, V)``, each run's zero-padded to the stack's ``H, V``; ``on_device`` None (every run of one width):
    ``call`` once on the whole stack.

    ``per_channel``: the stacked ``(R, B, N, H, K or V)`` inputs, the last one the values (its width is ``V``),
    ``per_head``: ``(R, B, N, H)`` inputs (or None); ``call(*per_channel, *per_head)`` on a group's share of each
    (``(R_g, B, N, H_g, K_g or V_g)``, ``(R_g, B, N, H_g)``) gives ``(R_g, B, N, H_g, V_g)``. One gather of every
    input and one of the output, whose backward is one scatter each, unless the groups already lie in stack order
    (:attr:`WidthGroups.in_order`, as in a sweep's stacks): then none; the groups are contiguous slices between."""
    if on_device is None:
        return call(*per_channel, *per_head)
    groups, order, unorder = on_device
    h, width = per_channel[-1].shape[-2:]

    def shares(x: torch.Tensor | None) -> list[torch.Tensor | None]:
        if x is None:
            return [None] * len(groups.sizes)
        return list((x if groups.in_order else x.index_select(0, order)).split(groups.sizes))

    channel_shares = [shares(x) for x in per_channel]
    head_shares = [shares(x) for x in per_head]
    outputs = []
    for g, (hg, kg, vg) in enumerate(groups.widths):
        inputs = [x[g][..., :hg, : (vg if i == len(per_channel) - 1 else kg)] for i, x in enumerate(channel_shares)]
        inputs += [None if x[g] is None else x[g][..., :hg] for x in head_shares]
        outputs.append(F.pad(call(*inputs), (0, width - vg, 0, h - hg)))
    stacked = torch.cat(outputs)
    return stacked if groups.in_order else stacked.index_select(0, unorder)
