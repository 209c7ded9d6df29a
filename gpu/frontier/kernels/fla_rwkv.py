"""RWKV's recurrences through fla's Triton kernels, in the stacked layout: ``fused_recurrent_rwkv4`` (RWKV-4's WKV)
and ``chunk_rwkv7`` (RWKV-7's generalised delta rule).

**RWKV-4** (fla ``0.6``, ``fla.ops.rwkv4``): per channel, with ``w = −e^{time_decay}`` and ``u = time_first``::

    wkv_t = (Σ_{s<t} e^{(t−1−s) w + k_s} v_s + e^{u + k_t} v_t) / (Σ_{s<t} e^{(t−1−s) w + k_s} + e^{u + k_t})

one token at a time in float32, carrying ``(α, β, ε)`` (numerator, denominator, their running log-scale), the same
stable recurrence as the reference's CUDA kernel and our :meth:`RWKV4.step`. ``w, u`` are one vector shared by the
whole batch, so the runs fold into the **channel** axis here (``(B, N, R·d)``), not the batch axis. fla's kernel takes
the raw ``time_decay`` (it forms ``−e^{w}`` itself, and its gradient is with respect to the raw one) and an initial
state ``(B, 3, 1, C)``: ``α = β = 0``, ``ε = −1e38`` (the reference kernel's ``MIN_VALUE``). Inputs go in float32
(the reference harness casts to float32 for its kernel too); the output is float32. Differences from our reference:
none but the order of float32 operations. It is not ``torch.compiler.disable``-d by fla: we mark it so.

**RWKV-7** (fla ``0.6``, ``fla.ops.rwkv7``, which is ``chunk_dplr_delta_rule`` of
``fla.ops.generalized_delta_rule``; its naive form ``dplr_recurrence`` says the same one token at a time)::

    S_t = diag(e^{w_t}) S_{t−1} + b_t (a_tᵀ S_{t−1}) + k_t v_tᵀ,      o_t = scale · S_tᵀ r_t

called as fla's ``RWKV7Attention`` calls it: ``scale = 1``, ``safe_gate=True`` with ``lower_bound = −e^{−1/2}`` (the
layer's log decays lie in ``(−e^{−1/2}, 0)``), chunks of 64. Differences: chunked WY form, ``tl.dot`` in the input
dtype; **half precision only** (fla warns that float32 "does not support float32 on some platforms"; the family's own
float32 form runs otherwise); heads narrower than 16 zero-padded, wider than 256 not served.

``MQARKIT_FLA=0`` turns both paths off.
"""

from __future__ import annotations

import torch

from mqarkit.gpu.frontier.kernels.fla_common import HALF, fla_call, fla_enabled, fla_op
from mqarkit.gpu.frontier.kernels.fla_heads import fold, head_widths_served, unfold

RWKV4 = ("fla.ops.rwkv4", "fused_recurrent_rwkv4")
RWKV7 = ("fla.ops.rwkv7", "chunk_rwkv7")
RWKV4_START_LOG_SCALE = -1e38  # ε before the first token: the reference CUDA kernel's MIN_VALUE
RWKV7_LOG_DECAY_BOUND = -0.6065306597126334  # −e^{−1/2}: RWKV-7's log decays lie in (bound, 0)


def rwkv4_available(device: torch.device) -> bool:
    """Whether ``fused_recurrent_rwkv4`` serves: CUDA, fla importable, not switched off."""
    return fla_enabled(device) and fla_op(*RWKV4) is not None


def rwkv7_available(device: torch.device, dtype: torch.dtype, key_width: int, value_width: int) -> bool:
    """Whether ``chunk_rwkv7`` serves: CUDA, fla importable, not switched off, half precision, head widths served."""
    return (
        fla_enabled(device)
        and dtype in HALF
        and fla_op(*RWKV7) is not None
        and head_widths_served(key_width, value_width)
    )


@torch.compiler.disable
def fla_rwkv4(time_decay: torch.Tensor, time_first: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``time_decay, time_first (R, C)``, ``k, v (R, B, N, C)`` -> ``wkv (R, B, N, C)`` float32: one call, the runs
    side by side in the channel axis."""
    r, b, n, c = k.shape

    def channels(x: torch.Tensor) -> torch.Tensor:  # (R, B, N, C) -> (B, N, R·C), float32
        return x.float().permute(1, 2, 0, 3).reshape(b, n, r * c)

    state = torch.zeros(b, 3, 1, r * c, device=k.device, dtype=torch.float32)
    state[:, 2] = RWKV4_START_LOG_SCALE
    wkv, _ = fla_call(*RWKV4)(
        time_decay.float().reshape(-1), time_first.float().reshape(-1), channels(k), channels(v), state
    )
    return wkv.reshape(b, n, r, c).permute(2, 0, 1, 3)


RWKV7_CHUNK = 64  # the chunk fla_rwkv7 asks chunk_rwkv7 for (fla's choice under a safe gate bound)
# (C, C) tensors per chunk and head that fla's DPLR forward holds at once (fla/ops/generalized_delta_rule/dplr/chunk.py:
# A_ab, A_qk, A_ak and A_qb from its intra-chunk step, then A_ab_inv beside them), three of them float32. An evaluation
# that reuses the training graph keeps the forward's; the backward holds up to seven, at the training's shorter lengths.
DPLR_FORWARD_PAIR_TENSORS = 5


@torch.compiler.disable
def fla_rwkv7(
    r: torch.Tensor, log_decay: torch.Tensor, k: torch.Tensor, v: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """``r, log_decay, k, a, b (R, B, N, H, K)``, ``v (R, B, N, H, V)`` -> ``o (R, B, N, H, V)`` in ``r``'s (half)
    dtype; padded key channels get ``w = 0`` (no decay of a state row that stays 0)."""
    dtype = r.dtype
    o, _ = fla_call(*RWKV7)(
        fold(r),
        fold(log_decay, torch.float32),
        fold(k, dtype),
        fold(v, dtype),
        fold(a, dtype),
        fold(b, dtype),
        scale=1.0,
        safe_gate=True,
        lower_bound=RWKV7_LOG_DECAY_BOUND,
        chunk_size=RWKV7_CHUNK,
    )
    return unfold(o, r.shape[0], v.shape[-1])
