"""The parallel ("quadratic") form of the linear recurrences behind the fla-style families, in plain torch.

Glossary (one head; ``t, s`` positions, ``c`` a key channel; ``K`` key and ``V`` value width)::

    S_t  (K × V)   the state after token t, S_{−1} = 0
    D_t  = diag(exp(g_t))       the decay of step t; g_t ≤ 0 per key channel (g_t (K,)) or per head (g_t scalar)
    G_t  = Σ_{ρ≤t} g_ρ          cumulative log decay, so D_t … D_{s+1} = diag(exp(G_t − G_s))
    a_t, b_t (K,)               the rank-one correction (delta rule, RWKV-7); absent for (gated) linear attention

    S_t = D_t S_{t−1} + b_t (a_tᵀ S_{t−1}) + k_t v_tᵀ          o_t = S_tᵀ q_t

Every family here is this recurrence with its own ``q, k, v, g, a, b`` (the family module says which):
Mamba-2/SSD and simple GLA (``g`` per head, no ``a, b``), GLA (``g`` per key channel), DeltaNet (no decay,
``a = k̂``, ``b = −β k̂``, key ``β k̂``), Gated DeltaNet (the same with ``g`` per head, ``b = −β e^{g} k̂``) and RWKV-7
(``g`` per key channel, ``a = −κ̂``, ``b = κ̂ ⊙ α``).

Unrolled from ``S_{−1} = 0`` it is a sum over pairs ``s ≤ t`` (:func:`linear_recurrence`). With ``u_t = S_{t−1}ᵀ a_t``
(the correction's read of the old state)::

    S_t = Σ_{s≤t} diag(e^{G_t − G_s}) (k_s v_sᵀ + b_s u_sᵀ)
    u_t = Σ_{s<t} [(a_t ⊙ e^{G_{t−1} − G_s})·k_s] v_s + [(a_t ⊙ e^{G_{t−1} − G_s})·b_s] u_s
        ⇒  (I − M_ab) U = M_ak V          (M_ab strictly lower triangular: one triangular solve)
    o_t = Σ_{s≤t} [(q_t ⊙ e^{G_t − G_s})·k_s] v_s + [(q_t ⊙ e^{G_t − G_s})·b_s] u_s

Every exponent is ``G_t − G_s`` with ``s ≤ t`` (a product of decays ≤ 1), so nothing overflows. The cost is the
``(N, N)`` weights per head (``(N, N, K)`` where the decay is per channel): the CPU path of the tests and small sweeps;
on CUDA the families call fla's chunked kernels instead.
"""

from __future__ import annotations

import torch


def pair_weights(x: torch.Tensor, y: torch.Tensor, gx: torch.Tensor | None, gy: torch.Tensor | None, *, strict: bool):
    """``W[t, s] = Σ_c x[t, c] y[s, c] e^{gx[t, c] − gy[s, c]}`` for ``s ≤ t`` (``s < t`` if ``strict``), else 0.

    ``x, y (..., N, K)``; ``gx, gy`` cumulative log decays ``(..., N, K)`` (per channel), ``(..., N, 1)`` (per head:
    the factor leaves the sum over ``c``) or None (no decay) -> ``(..., N, N)``.
    """
    n = x.shape[-2]
    keep = torch.ones(n, n, dtype=torch.bool, device=x.device).tril(-1 if strict else 0)
    if gx is None:
        return (x @ y.transpose(-1, -2)).masked_fill(~keep, 0.0)
    if gx.shape[-1] == 1:
        gap = gx - gy.transpose(-1, -2)  # (..., N, N)
        return (x @ y.transpose(-1, -2)) * torch.exp(gap.masked_fill(~keep, float("-inf")))
    gap = gx[..., :, None, :] - gy[..., None, :, :]  # (..., N, N, K)
    decay = torch.exp(gap.masked_fill(~keep[:, :, None], float("-inf")))
    return torch.einsum("...tc,...sc,...tsc->...ts", x, y, decay)


def linear_recurrence(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
) -> torch.Tensor:
    """``o_t = S_tᵀ q_t`` of the module docstring's recurrence, every position at once, float32 at least.

    ``q, k, a, b (..., N, K)``, ``v (..., N, V)``, ``log_decay`` ``g`` as ``(..., N, K)``, ``(..., N, 1)`` or None
    -> ``(..., N, V)`` in the accumulation dtype (float32, or float64 for float64 inputs).
    """
    acc = torch.promote_types(q.dtype, torch.float32)
    q, k, v = q.to(acc), k.to(acc), v.to(acc)
    g = None if log_decay is None else torch.cumsum(log_decay.to(acc), dim=-2)  # G_t
    out = pair_weights(q, k, g, g, strict=False) @ v
    if a is None:
        return out
    a, b = a.to(acc), b.to(acc)
    g_before = None if g is None else g - log_decay.to(acc)  # G_{t−1}
    m_ab = pair_weights(a, b, g_before, g, strict=True)  # (..., N, N)
    eye = torch.eye(q.shape[-2], dtype=acc, device=q.device)
    u = torch.linalg.solve_triangular(eye - m_ab, pair_weights(a, k, g_before, g, strict=True) @ v, upper=False)
    return out + pair_weights(q, b, g, g, strict=False) @ u
