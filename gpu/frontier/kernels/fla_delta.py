"""The (gated) delta rule through fla's chunked Triton kernels, in the stacked layout: ``chunk_delta_rule``
(DeltaNet) and ``chunk_gated_delta_rule`` (Gated DeltaNet).

They compute, per sequence and head (fla ``0.6``, ``fla.ops.delta_rule`` / ``fla.ops.gated_delta_rule``; their naive
forms ``delta_rule_recurrence`` / ``naive_recurrent_gated_delta_rule`` say the same one token at a time)::

    S ← e^{g_t} S;   S ← S + β_t k_t (v_t − Sᵀ k_t)ᵀ;   o_t = scale · Sᵀ q_t         (g = 0 for the delta rule)

How fla's kernels differ from our reference (bounded by the GPU tests):

- chunks of 64 in the WY form (a triangular inverse per chunk, fla's ``solve_tril``), the state across chunks; the
  products are ``tl.dot`` in the input dtype with float32 accumulation;
- **half precision only**: ``chunk_delta_rule`` refuses float32 inputs (an assertion: "does not support float32"),
  and the gated kernel shares its state kernels (``fla.ops.common.chunk_delta_h``), so both serve bf16/fp16 inputs
  (training under autocast) and the family's own float32 form runs otherwise (:func:`delta_rule_available`);
- we normalise ``q, k`` ourselves (``use_qk_l2norm_in_kernel=False``; fla's in-kernel norm is ours:
  ``x / √(Σx² + 1e-6)``) so that the per-run ``1/√K`` can be folded into ``q``: ``scale = 1``;
- ``β`` goes in the compute dtype (as fla's layers pass it), the log decays ``g`` in float32 (as fla's layer does);
- heads narrower than 16 are zero-padded (:mod:`.fla_heads`); wider than 256 are not served (fla asserts ``K ≤ 256``).

Both entry points are ``torch.compiler.disable``-d by fla (and here): under ``torch.compile`` each call is a graph
break, run eagerly. ``MQARKIT_FLA=0`` turns this path off.
"""

from __future__ import annotations

import torch

from mqarkit.gpu.frontier.kernels.fla_common import (
    HALF,
    fla_call,
    fla_enabled,
    fla_op,
    gated_backward,
)
from mqarkit.gpu.frontier.kernels.fla_dqkwg import prepare_gated_backward
from mqarkit.gpu.frontier.kernels.fla_heads import fold, fold_heads, head_widths_served, unfold

DELTA_RULE = ("fla.ops.delta_rule", "chunk_delta_rule")
GATED_DELTA_RULE = ("fla.ops.gated_delta_rule", "chunk_gated_delta_rule")


def delta_rule_available(device: torch.device, dtype: torch.dtype, key_width: int, value_width: int, gated: bool):
    """Whether fla's (gated) delta rule serves: CUDA, fla importable, not switched off, half precision, widths, and
    (gated) its backward computed here, by fla or by our form of the kernel fla refuses
    (:func:`~.fla_common.gated_backward`)."""
    op = GATED_DELTA_RULE if gated else DELTA_RULE
    return (
        fla_enabled(device)
        and dtype in HALF
        and fla_op(*op) is not None
        and head_widths_served(key_width, value_width)
        and not (gated and gated_backward() is None)
    )


@torch.compiler.disable
def fla_delta_rule(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor, log_decay: torch.Tensor | None
) -> torch.Tensor:
    """``q, k (R, B, N, H, K)`` (normalised, ``q`` scaled), ``v (R, B, N, H, V)``, ``beta (R, B, N, H)``, ``log_decay``
    ``(R, B, N, H)`` or None (DeltaNet) -> ``o (R, B, N, H, V)`` in ``q``'s (half) dtype: one fla call for the stack."""
    dtype = q.dtype
    args = (fold(q), fold(k, dtype), fold(v, dtype))
    if log_decay is None:
        o, _ = fla_call(*DELTA_RULE)(*args, fold_heads(beta, dtype), scale=1.0, use_qk_l2norm_in_kernel=False)
    else:
        prepare_gated_backward()
        g = fold_heads(log_decay, torch.float32)
        o, _ = fla_call(*GATED_DELTA_RULE)(*args, g, fold_heads(beta, dtype), scale=1.0, use_qk_l2norm_in_kernel=False)
    return unfold(o, q.shape[0], v.shape[-1])
