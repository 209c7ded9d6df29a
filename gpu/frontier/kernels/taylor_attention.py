"""Causal normalised Taylor ("Based") attention over stacked runs, with its quadratic scores recomputed in backward.

``y_i = Σ_{j≤i} K(q_i,k_j) v_j / Σ_{j≤i} K(q_i,k_j)``, ``K = 1 + s + s²/2``, ``s = q_i·k_j`` (the scale already in
``q``). :func:`taylor_attention` is the torch form used off CUDA or without fla (:mod:`.fla_taylor` is the CUDA one);
:func:`taylor_kernel` materialises ``K`` directly and is the naive reference the tests compare both with.
"""

from __future__ import annotations

import torch


def taylor_kernel(q: torch.Tensor, k: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``1 + s + s²/2`` with ``s = scale·q·kᵀ``; ``q, k (R, B, N, f)``, ``scale (R,)`` -> ``(R, B, N, N)``."""
    s = torch.matmul(q, k.transpose(-1, -2)) * scale[:, None, None, None]
    return 1 + s + 0.5 * s * s


class _TaylorAttention(torch.autograd.Function):
    """Causal normalised Taylor attention with the ``(R, B, N, N)`` scores recomputed in backward.

    With ``s_ij = q̂_i·k_j`` (the per-run scale folded into ``q̂ = q·scale``), ``K = 1 + s + s²/2`` and
    ``P = tril(s + s²/2)`` (the kernel without its constant term), the output is::

        num_i = Σ_{j≤i} K_ij v_j = (P v)_i + c_i,      c_i = Σ_{j≤i} v_j            (cumsum, float32)
        den_i = Σ_{j≤i} K_ij     = (P 1)_i + (i + 1)
        y_i   = num_i / (den_i + 1e-12)

    ``P v`` and ``P 1`` come from one matmul ``P @ [v | 1 | 0…]`` (the ones column padded to a multiple of 8 for the
    tensor cores); ``P`` is formed in place, ``s.addcmul_(s, s, 0.5)`` (one rounding per element; the constant 1,
    large next to the rest, never passes through the low-precision tile). Backward, with ``g = ∂L/∂y``::

        g_num = g / den,   g_den = −Σ_e g_e y_e / den
        ∂L/∂P = tril([g_num | g_den] @ [v | 1]ᵀ),    ∂L/∂s = ∂L/∂P ⊙ (1 + s)
        ∂L/∂v = Pᵀ g_num + revcumsum(g_num),   ∂L/∂q̂ = (∂L/∂s) k,   ∂L/∂k = (∂L/∂s)ᵀ q̂

    so only ``q̂, k, v, y, den`` (all ``O(N)``) are kept between passes: the quadratic tensors live one at a time
    in forward and three at a time in backward, in the matmul dtype (bf16 under autocast).
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # q, k (R, B, N, f), v (R, B, N, d), one dtype
        p = _taylor_rest(q, k)
        num, den = _num_den(p, v)
        y = (num / den[..., None]).to(v.dtype)
        ctx.save_for_backward(q, k, v, y, den)
        return y

    @staticmethod
    def backward(ctx, gy: torch.Tensor):
        q, k, v, y, den = ctx.saved_tensors
        acc = _acc_dtype(v)
        g_num = gy.to(acc) / den[..., None]  # (R, B, N, d)
        g_den = -(gy.to(acc) * y.to(acc)).sum(-1) / den  # (R, B, N)
        s = torch.matmul(q, k.transpose(-1, -2))  # (R, B, N, N)
        p = torch.addcmul(s, s, s, value=0.5).tril_()
        gv = torch.matmul(p.transpose(-1, -2), g_num.to(v.dtype)).to(acc)
        gv += g_num.flip(2).cumsum(2).flip(2)
        del p
        g_aug = torch.cat([g_num, g_den[..., None]], dim=-1).to(v.dtype)
        gp = torch.matmul(g_aug, _ones_column(v, pad=False).transpose(-1, -2))  # (R, B, N, N)
        gs = gp.addcmul_(gp, s).tril_()  # ∂L/∂P ⊙ (1 + s), causal part only
        del s
        gq = torch.matmul(gs, k)
        gk = torch.matmul(gs.transpose(-1, -2), q)
        return gq, gk, gv.to(v.dtype)


def _taylor_rest(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``P = tril(s + s²/2)``, ``s = q kᵀ``: ``(R, B, N, N)`` in the matmul dtype, formed in place."""
    s = torch.matmul(q, k.transpose(-1, -2))
    return s.addcmul_(s, s, value=0.5).tril_()


def _acc_dtype(t: torch.Tensor) -> torch.dtype:
    """float32 for low-precision tensors, else their own dtype (float64 stays float64 for gradcheck)."""
    return torch.promote_types(t.dtype, torch.float32)


def _ones_column(v: torch.Tensor, pad: bool = True) -> torch.Tensor:
    """``[v | 1]`` (``pad``: then zeros up to a multiple of 8 columns), ``(R, B, N, d) -> (R, B, N, d + 1 [+ pad])``."""
    d = v.shape[-1]
    width = (d + 1 + 7) // 8 * 8 if pad else d + 1
    out = v.new_zeros(*v.shape[:-1], width)
    out[..., :d] = v
    out[..., d] = 1
    return out


def _num_den(p: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Numerator ``(R, B, N, d)`` and denominator ``(R, B, N)`` (float32) of the Taylor attention given ``P``."""
    d, n, acc = v.shape[-1], v.shape[2], _acc_dtype(v)
    pv = torch.matmul(p, _ones_column(v)).to(acc)
    num = pv[..., :d] + v.to(acc).cumsum(2)
    pos = torch.arange(1, n + 1, device=v.device, dtype=acc)
    den = pv[..., d] + pos + 1e-12
    return num, den


def taylor_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``y_i = Σ_{j≤i} K(q_i,k_j) v_j / Σ_{j≤i} K(q_i,k_j)``, ``K = 1 + q·k + (q·k)²/2`` (scale already in ``q``).

    ``q, k (R, B, N, f)``, ``v (R, B, N, d)`` -> ``(R, B, N, d)``; custom backward: :class:`_TaylorAttention`.
    Inputs are cast to one dtype: bf16 under CUDA autocast, else ``v``'s dtype.
    """
    dtype = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") and v.is_cuda else v.dtype
    with torch.autocast(v.device.type, enabled=False):
        return _TaylorAttention.apply(q.to(dtype), k.to(dtype), v.to(dtype))
