"""fla's gated ``prepare_wy_repr_bwd`` (the backward of the gated delta rule's WY representation) in plain torch,
registered as an fla backend for the gated delta rule where fla refuses its gated backward (its default route there:
:func:`~.fla_delta.gated_route`).

Why: with our form of ``chunk_bwd_dqkwg`` (:mod:`.fla_dqkwg`) in place of the kernel fla refuses on Hopper, bf16
Gated DeltaNet through fla still failed its GPU test on an H100, and the tensors that failed (the gradients reaching
``k``, ``β`` and the decay, not those reaching ``q`` or ``v``) are the outputs of fla's gated
``prepare_wy_repr_bwd_kernel`` that pass through its ``∂A`` term, while its ``dv`` (computed apart from that term)
was right (docs/results/frontier_protocol.md, eleventh session). The same pattern (``dk`` and ``dβ`` wrong, ``dv``
right) is fla's issue #984 for the ungated rule's kernel of that name on Hopper with Triton ≥ 3.4 at chunks of 64,
remedied there by 2 warps; for the gated kernel 2 warps did not help here (tenth session), and fla's #640 (its fix,
#826) traces the refused ``chunk_bwd_dqkwg`` to a transposed ``tl.dot`` result on Hopper, a form this kernel also
has. This module computes that function instead: with it, bf16 Gated DeltaNet passed its GPU test and its graphed
step on an H100 (twelfth session), so that kernel is what Hopper gets wrong; the whole route computes the rule under
Triton's interpreter (``test_fla_routes_interpreted``).

Glossary (one sequence and head; chunk of ``C`` positions ``i, j``; fla's names)::

    k (C, K), v (C, V), β (C)     the op's keys, values and writing strengths
    g (C)                         the log decays cumulated inside the chunk, in log2 units (fla pre-scales by 1/ln 2)
    L (C, C)                      L_ij = β_i (k_i·k_j) 2^{g_i − g_j} for i > j, else 0     (fla: chunk_scaled_dot_kkt)
    A (C, C)                      (I + L)^{-1}, unit lower triangular                      (fla: solve_tril; given)
    w = A (β 2^{g} ⊙ k),  u = A (β ⊙ v)                                                    (fla: recompute_w_u_fwd)
    dw (C, K), du (C, V)          the gradients of w and u

Derivation. With ``x = β 2^{g} ⊙ k`` and ``y = β ⊙ v``, ``w = A x`` and ``u = A y`` give ``dx = Aᵀ dw``,
``dy = Aᵀ du`` and ``dA = dw xᵀ + du yᵀ``. From ``A = (I + L)^{-1}``, ``dL = −Aᵀ dA Aᵀ``, kept on the strictly lower
triangle (the entries ``L`` has; since ``A`` is lower triangular, ``dA``'s upper triangle and diagonal add nothing
there, so ``dA`` may be masked first, as fla's kernel does). Writing ``M_ij = β_i (k_i·k_j)`` and
``dM = dL ⊙ 2^{g_i − g_j}``::

    dk_i = β_i 2^{g_i} dx_i + β_i Σ_j dM_ij k_j + Σ_j dM_ji β_j k_j
    dv_i = β_i dy_i
    dβ_i = 2^{g_i} (dx_i·k_i) + dy_i·v_i + Σ_j dM_ij (k_i·k_j)
    dg_i = dx_i·x_i + Σ_j (dM ⊙ M)_ij − Σ_j (dM ⊙ M)_ji          (dL_ij L_ij = dM_ij M_ij)

``dg`` is the gradient with respect to the cumulated decay in natural-log units (``2^{g}`` is ``e^{G}``), as fla's
kernel returns it (its caller reverse-cumulates it into the per-step decays with ``chunk_bwd_dqkwg``'s). This is what
fla's Triton kernel computes (``fla/ops/gated_delta_rule/wy_fast.py``: it loads ``A`` transposed, masks ``dA`` to the
strictly lower triangle, then ``Aᵀ dA Aᵀ``); here the chunks are an axis and every sum a batched product, in float32
at least (fla's kernel casts ``dA`` to the inputs' half dtype before its last products). :func:`naive_wy_backward`
is the same by definition: ``A`` formed token by token and the gradients taken by autograd.
"""

from __future__ import annotations

import functools
import math

import torch

from mqarkit.gpu.frontier.kernels.fla_common import register_torch_form
from mqarkit.gpu.frontier.kernels.fla_dqkwg import _chunked, _unchunked

WY_PAIR_TENSORS = 6  # (C, C) tensors per chunk and head that chunk_wy_backward holds at once at most


def chunk_wy_backward(
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    A: torch.Tensor,
    dw: torch.Tensor,
    du: torch.Tensor,
    g: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``dk (B, T, H, K)``, ``dv (B, T, H, V)``, ``dβ (B, T, H)``, ``dg (B, T, H)`` in the dtypes of ``k, v, β, g``
    from ``k (B, T, H, K)``, ``v (B, T, H, V)``, ``β (B, T, H)``, ``A (B, T, H, C)`` (row ``t`` of its chunk's
    inverse; ``C`` the chunk), ``dw (B, T, H, K)``, ``du (B, T, H, V)`` and ``g (B, T, H)`` (cumulated per chunk, log2
    units): module docs."""
    t, c = k.shape[1], A.shape[-1]
    acc = torch.promote_types(k.dtype, torch.float32)  # float32, or float64 for float64 inputs
    kc, vc, dwc, duc, ac = (_chunked(x, c, acc) for x in (k, v, dw, du, A))  # (B, NT, H, C, ·)
    bc, gc = (_chunked(x[..., None], c, acc)[..., 0] for x in (beta, g))  # (B, NT, H, C)
    at = ac.transpose(-1, -2)
    decay = torch.exp2(gc)
    x, y = kc * (bc * decay)[..., None], vc * bc[..., None]
    dx, dy = at @ dwc, at @ duc
    positions = torch.arange(gc.shape[1] * c, device=k.device).view(-1, c)  # (NT, C)
    valid = positions < t
    strict = (positions[:, :, None] > positions[:, None, :]) & valid[:, :, None] & valid[:, None, :]  # i > j
    da = torch.where(strict[:, None], dwc @ x.transpose(-1, -2) + duc @ y.transpose(-1, -2), 0)
    gap = (gc[..., :, None] - gc[..., None, :]).masked_fill(~strict[:, None], float("-inf"))  # 2^{−∞} = 0 off L
    dm = -(at @ da @ at) * torch.exp2(gap)  # dM, (B, NT, H, C, C)
    del da, gap  # the peak: A's chunks, these two, −Aᵀ dA Aᵀ, its gate and dM (WY_PAIR_TENSORS)
    m = (kc @ kc.transpose(-1, -2)) * bc[..., :, None]  # M_ij = β_i (k_i·k_j)
    dm_m = dm * m
    dkb = dm @ kc  # Σ_j dM_ij k_j
    dk = dx * (bc * decay)[..., None] + dkb * bc[..., None] + dm.transpose(-1, -2) @ (kc * bc[..., None])
    dv = dy * bc[..., None]
    db = (dx * kc).sum(-1) * decay + (dy * vc).sum(-1) + (dkb * kc).sum(-1)
    dg = (dx * x).sum(-1) + dm_m.sum(-1) - dm_m.sum(-2)
    return (
        _unchunked(dk, t, k.dtype),
        _unchunked(dv, t, v.dtype),
        _unchunked(db[..., None], t, beta.dtype)[..., 0],
        _unchunked(dg[..., None], t, g.dtype)[..., 0],
    )


def naive_wy_forward(
    k: torch.Tensor, v: torch.Tensor, beta: torch.Tensor, g_natural: torch.Tensor, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``w (B, T, H, K)``, ``u (B, T, H, V)`` and ``A (B, T, H, C)`` by definition, chunk by chunk: ``A = (I + L)⁻¹``
    by forward substitution row by row, ``g_natural (B, T, H)`` the cumulated decays in natural-log units."""
    b, t, h, _ = k.shape
    rows_w, rows_u, rows_a = [], [], []
    for start in range(0, t, chunk_size):
        end = min(start + chunk_size, t)
        rows: list[torch.Tensor] = []  # row i of A over the chunk's positions, (B, H, C)
        for i in range(start, end):
            row = torch.eye(chunk_size, dtype=k.dtype, device=k.device)[i - start].expand(b, h, -1)  # e_i
            for j in range(start, i):  # (I + L) A = I: A_i = e_i − Σ_{j<i} L_ij A_j
                l_ij = beta[:, i] * (k[:, i] * k[:, j]).sum(-1) * torch.exp(g_natural[:, i] - g_natural[:, j])
                row = row - l_ij[..., None] * rows[j - start]
            rows.append(row)
        a = torch.stack(rows, 1)  # (B, C', H, C)
        x = k[:, start:end] * (beta[:, start:end] * torch.exp(g_natural[:, start:end]))[..., None]
        y = v[:, start:end] * beta[:, start:end, :, None]
        cols = a[..., : end - start]  # (B, C', H, C')
        rows_w.append(torch.einsum("bihj,bjhk->bihk", cols, x))
        rows_u.append(torch.einsum("bihj,bjhv->bihv", cols, y))
        rows_a.append(a)
    return torch.cat(rows_w, 1), torch.cat(rows_u, 1), torch.cat(rows_a, 1)


def naive_wy_backward(
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    dw: torch.Tensor,
    du: torch.Tensor,
    g: torch.Tensor,
    chunk_size: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`chunk_wy_backward` by definition: :func:`naive_wy_forward` differentiated by autograd (``A`` formed
    from ``k, β, g`` rather than taken), ``g`` in log2 units, ``dg`` with respect to the natural-log decays."""
    leaves = [x.detach().clone().requires_grad_() for x in (k, v, beta, g * math.log(2))]
    w, u, _ = naive_wy_forward(*leaves, chunk_size)
    return tuple(torch.autograd.grad((w, u), leaves, (dw, du)))


def _fla_call(k, v, beta, A, dw, du, g=None, cu_seqlens=None, chunk_indices=None) -> dict:
    """A call of fla's gated-delta-rule ``prepare_wy_repr_bwd`` (its signature, fla 0.6) by argument name."""
    return locals()


def serves(*args, **kwargs) -> tuple[bool, str | None]:
    """fla's verifier answer for a call of ``prepare_wy_repr_bwd``: the gated delta rule's calls the harness makes (a
    decay, equal lengths, as many value as key heads), or why not."""
    call = _fla_call(*args, **kwargs)
    if call["g"] is None:
        return False, "mqarkit's torch form takes the gated rule's calls (a decay g)"
    if call["cu_seqlens"] is not None:
        return False, "mqarkit's torch form takes sequences of equal length (no cu_seqlens)"
    if call["v"].shape[2] != call["k"].shape[2]:
        return False, "mqarkit's torch form takes as many value as key heads"
    return True, None


def fla_prepare_wy_repr_bwd(*args, **kwargs):
    """:func:`chunk_wy_backward` called as fla calls ``prepare_wy_repr_bwd``."""
    call = _fla_call(*args, **kwargs)
    return chunk_wy_backward(*(call[n] for n in ("k", "v", "beta", "A", "dw", "du", "g")))


@functools.cache
def install_torch_backend() -> None:
    """Register :func:`chunk_wy_backward` as fla's gated ``prepare_wy_repr_bwd`` backend (operation
    ``gated_delta_rule``), once per process."""
    register_torch_form("gated_delta_rule", "prepare_wy_repr_bwd", serves, fla_prepare_wy_repr_bwd)
