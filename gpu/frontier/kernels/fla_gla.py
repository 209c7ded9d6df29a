"""Gated linear attention through fla's chunked Triton kernels, in the stacked layout: ``chunk_simple_gla`` (one
decay per head: Mamba-2 / SSD) and ``chunk_gla`` (one decay per key channel: GLA).

Both compute, per sequence and head (fla ``0.6``, ``fla.ops.simple_gla`` / ``fla.ops.gla``; their naive forms
``naive_recurrent_simple_gla`` / ``naive_recurrent_gla`` say the same one token at a time)::

    S_t = diag(e^{g_t}) S_{t−1} + k_t v_tᵀ,      o_t = scale · S_tᵀ q_t          (g log-space, S_{−1} = 0)

which is :func:`mqarkit.gpu.frontier.families.recurrences.linear_recurrence` without the rank-one correction. How
fla's kernels differ from that form, bounded by the GPU tests:

- chunks of 64: inside a chunk the decays ``e^{G_t − G_s}`` (fla cumulates ``g`` per chunk, pre-scaled by ``1/ln 2``
  for ``exp2``), across chunks the state; the sums run in another order;
- the products are ``tl.dot`` in the input dtype with float32 accumulation (tf32 for float32 inputs, bf16 under
  autocast); ``q, k, v`` are handed over in the caller's compute dtype, the log decays ``g`` in float32;
- ``scale``: fla's default is ``K^{-1/2}``; we pass ``scale = 1`` (the caller folds any per-run scale into ``q``);
- heads narrower than 16 are zero-padded (:mod:`.fla_heads`); wider than 256 are not served.

``chunk_simple_gla`` takes ``g (batch, T, heads)``, ``chunk_gla`` takes ``g (batch, T, heads, K)``. Both are
``torch.compiler.disable``-d by fla (and here): under ``torch.compile`` each call is a graph break, run eagerly.
``MQARKIT_FLA=0`` turns this path off.
"""

from __future__ import annotations

import torch

from mqarkit.gpu.frontier.kernels.fla_common import fla_call, fla_enabled, fla_op, gated_backward
from mqarkit.gpu.frontier.kernels.fla_dqkwg import prepare_gated_backward
from mqarkit.gpu.frontier.kernels.fla_heads import (
    GroupsOnDevice,
    call_by_width_group,
    fold,
    fold_heads,
    head_widths_served,
    unfold,
)

SIMPLE_GLA = ("fla.ops.simple_gla", "chunk_simple_gla")
GLA = ("fla.ops.gla", "chunk_gla")


def simple_gla_available(device: torch.device, key_width: int, value_width: int) -> bool:
    """Whether ``chunk_simple_gla`` serves: CUDA, fla importable, not switched off, head widths served, and its gated
    backward computed here, by fla or by our form of the kernel fla refuses (:func:`~.fla_common.gated_backward`)."""
    return (
        fla_enabled(device)
        and fla_op(*SIMPLE_GLA) is not None
        and head_widths_served(key_width, value_width)
        and gated_backward() is not None
    )


def gla_available(device: torch.device, key_width: int, value_width: int) -> bool:
    """Whether ``chunk_gla`` serves: CUDA, fla importable, not switched off, head widths served."""
    return fla_enabled(device) and fla_op(*GLA) is not None and head_widths_served(key_width, value_width)


@torch.compiler.disable
def fla_simple_gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_decay: torch.Tensor) -> torch.Tensor:
    """``q, k (R, B, N, H, K)``, ``v (R, B, N, H, V)``, ``log_decay (R, B, N, H)`` -> ``o (R, B, N, H, V)`` (in
    ``q``'s dtype: the caller's compute dtype), one call of ``chunk_simple_gla`` for the whole stack."""
    prepare_gated_backward()
    o, _ = fla_call(*SIMPLE_GLA)(
        fold(q), fold(k, q.dtype), fold(v, q.dtype), fold_heads(log_decay, torch.float32), scale=1.0
    )
    return unfold(o, q.shape[0], v.shape[-1])


@torch.compiler.disable
def fla_gla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor,
    groups: GroupsOnDevice | None = None,
) -> torch.Tensor:
    """``q, k, log_decay (R, B, N, H, K)``, ``v (R, B, N, H, V)`` -> ``o (R, B, N, H, V)`` (in ``q``'s dtype), one
    call of ``chunk_gla`` for the whole stack (padded key channels get ``g = 0``: they carry nothing), or, given
    ``groups`` (the stack's :class:`~.fla_heads.WidthGroups`, its order and inverse order as device tensors), one call
    per group of runs at their own widths (:func:`~.fla_heads.call_by_width_group`)."""
    return call_by_width_group(lambda q, k, g, v: _gla_call(q, k, v, g), groups, (q, k, log_decay, v), ())


def _gla_call(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_decay: torch.Tensor) -> torch.Tensor:
    """:func:`fla_gla` for runs of one width: the runs folded into fla's batch axis."""
    o, _ = fla_call(*GLA)(fold(q), fold(k, q.dtype), fold(v, q.dtype), fold(log_decay, torch.float32), scale=1.0)
    return unfold(o, q.shape[0], v.shape[-1])
