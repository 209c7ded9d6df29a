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

The pairs are taken chunk by chunk (:data:`CHUNK` positions; ``G`` restarts at each chunk): inside a chunk the
sums above with the chunk's own ``U``, plus the state ``S₀`` the chunk starts from, read through the decays since the
chunk began (``(q_t ⊙ e^{G_t})ᵀ S₀`` in ``o_t``, ``(a_t ⊙ e^{G_{t−1}})ᵀ S₀`` in ``u_t``), and at its end::

    S_end = diag(e^{G_last}) S₀ + Σ_s diag(e^{G_last − G_s}) (k_s v_sᵀ + b_s u_sᵀ)

Without the correction (``a, b`` absent) the chunks need no loop: each chunk's own contribution to its end state,
``N_j = Σ_s diag(e^{G_last − G_s}) k_s v_sᵀ``, is formed for all chunks at once, and the state entering chunk ``j`` is
``S₀_j = Σ_{i<j} diag(e^{Λ_{j−1} − Λ_i}) N_i`` with ``Λ_j − Λ_i = Σ_{i<m≤j} G_last(m)``, the segment sums of the
chunks' total log decays taken by a masked cumulative sum over each segment (:func:`segment_sums`), never as a
difference of two long prefix sums (which would round like the prefixes, not like the segment).

With the correction ``u`` reads the entering state, so the chunks run in order, but each chunk is an affine map of
the state ``S₀`` it starts from (the WY form of fla's delta-rule kernels). With ``T = I − M_ab``::

    U     = U₀ + W S₀              U₀ = T⁻¹ M_ak V,   W = T⁻¹ (a ⊙ e^{G_{t−1}})       (C × V and C × K)
    o     = w_qk V + w_qb U₀ + (q ⊙ e^{G} + w_qb W) S₀       (w_qk, w_qb: o's pair weights of k and b, as in the sum)
    S_end = diag(e^{G_last}) S₀ + B̃ᵀ (W S₀) + R     B̃_s = b_s ⊙ e^{G_last − G_s},   R = N_j + B̃ᵀ U₀

Everything but the chain ``S₀ ↦ S_end`` is formed for all chunks at once; the chain is three small products per chunk.

Every exponent is ``G_t − G_s`` with ``s ≤ t`` inside one chunk, or a segment sum of decays (≤ 0 both), so nothing
overflows. The cost is ``(C, C)`` weights per chunk and head (``(C, C, K)`` where the decay is per channel):
``O(N·C·K)``, plus ``O(N·K·V)`` for the states. This is the CPU path of the tests and small sweeps, and the CUDA path
wherever fla's chunked kernels do not serve (float32 inputs: fla takes DeltaNet, Gated DeltaNet, RWKV-7 and Mamba-2
in half precision only; Gated DeltaNet and Mamba-2 where fla refuses its gated backward and our torch forms are
switched off, ``MQARKIT_FLA_TORCH_BACKWARD=0``, and Gated DeltaNet there also under
``MQARKIT_FLA_GATED_DELTA_RULE=0``: ``fla_delta.gated_route``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHUNK = 16  # positions per chunk of the parallel form


def pair_weights(x: torch.Tensor, y: torch.Tensor, gx: torch.Tensor, gy: torch.Tensor, *, strict: bool):
    """``W[t, s] = Σ_c x[t, c] y[s, c] e^{gx[t, c] − gy[s, c]}`` for ``s ≤ t`` (``s < t`` if ``strict``), else 0.

    ``x, y (..., N, K)``; ``gx, gy`` cumulative log decays ``(..., N, K)`` (per channel) or ``(..., N, 1)`` (per
    head: the factor leaves the sum over ``c``) -> ``(..., N, N)``.
    """
    n = x.shape[-2]
    keep = torch.ones(n, n, dtype=torch.bool, device=x.device).tril(-1 if strict else 0)
    if gx.shape[-1] == 1:
        gap = gx - gy.transpose(-1, -2)  # (..., N, N)
        return (x @ y.transpose(-1, -2)) * torch.exp(gap.masked_fill(~keep, float("-inf")))
    gap = gx[..., :, None, :] - gy[..., None, :, :]  # (..., N, N, K)
    decay = torch.exp(gap.masked_fill(~keep[:, :, None], float("-inf")))
    return torch.einsum("...tc,...sc,...tsc->...ts", x, y, decay)


# Never compiled: the corrected form's loop over chunks unrolls into a graph per sequence length (Mamba-2's stack,
# when it still looped: 113 s to compile at N = 64 and 190 s more at N = 128 on the CPU, where Based compiles once in
# 17 s; on the H100 a speed row did not finish in 290 s). The form without the correction has no loop since, and is
# left eager too until a GPU has timed it compiled. Under ``torch.compile`` a call is a graph break: it runs eagerly,
# the code around it compiled.
@torch.compiler.disable
def linear_recurrence(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
) -> torch.Tensor:
    """``o_t = S_tᵀ q_t`` of the module docstring's recurrence, chunk by chunk, float32 at least (autocast off).

    ``q, k, a, b (..., N, K)``, ``v (..., N, V)``, ``log_decay`` ``g`` as ``(..., N, K)``, ``(..., N, 1)`` or None
    -> ``(..., N, V)`` in the accumulation dtype (float32, or float64 for float64 inputs).
    """
    with torch.autocast(q.device.type, enabled=False):  # float32 products and a float32 triangular solve
        return _linear_recurrence(q, k, v, log_decay, a, b)


def segment_sums(x: torch.Tensor) -> torch.Tensor:
    """``out[..., j, i] = Σ_{i<m≤j} x[..., m]`` for ``i ≤ j`` (0 on the diagonal), ``−inf`` above it; ``x (..., J)``
    -> ``(..., J, J)``. Each entry sums its own segment (a cumulative sum of ``x`` masked to ``m > i``), so its rounding
    is the segment's, whatever the sums before it."""
    j = x.shape[-1]
    below = torch.ones(j, j, dtype=torch.bool, device=x.device).tril(-1)  # m > i
    rows = x[..., :, None].expand(*x.shape, j).masked_fill(~below, 0)  # rows[..., m, i] = x_m where m > i
    sums = torch.cumsum(rows, dim=-2)  # Σ_{i<m≤j} x_m at [..., j, i]
    return sums.masked_fill(~torch.ones(j, j, dtype=torch.bool, device=x.device).tril(), float("-inf"))


def entering_states(log_end: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """The state each chunk starts from, ``S₀_j = Σ_{i<j} diag(e^{Σ_{i<m<j} L_m}) N_i`` (``S₀_0 = 0``).

    ``log_end (..., J, K | 1)`` the chunks' total log decays ``L``, ``own (..., J, K, V)`` the chunks' own end states
    ``N`` -> ``(..., J, K, V)``. The end state of chunk ``j`` is ``E_j = Σ_{i≤j} diag(e^{Σ_{i<m≤j} L_m}) N_i``;
    chunk ``j`` starts from ``E_{j−1}``."""
    weights = torch.exp(segment_sums(log_end.transpose(-1, -2)))  # (..., K | 1, J, J)
    if log_end.shape[-1] == 1:  # one decay per head
        ends = torch.einsum("...ji,...ikv->...jkv", weights[..., 0, :, :], own)
    else:  # one decay per key channel
        ends = torch.einsum("...kji,...ikv->...jkv", weights, own)
    return F.pad(ends[..., :-1, :, :], (0, 0, 0, 0, 1, 0))  # (..., J, K, V): zero, E_0, …, E_{J−2}


def _linear_recurrence(q, k, v, log_decay, a, b) -> torch.Tensor:
    acc = torch.promote_types(q.dtype, torch.float32)
    n = q.shape[-2]
    if log_decay is None:
        log_decay = q.new_zeros(*q.shape[:-1], 1)
    pad = -n % CHUNK  # trailing zero positions: nothing earlier reads them

    def chunks(t: torch.Tensor) -> torch.Tensor:  # (..., N, W) -> (..., N / C, C, W), float32 at least
        return F.pad(t.to(acc), (0, 0, 0, pad)).unflatten(-2, (-1, CHUNK))

    q, k, v, g_step = chunks(q), chunks(k), chunks(v), chunks(log_decay)
    g = torch.cumsum(g_step, dim=-2)  # G_t since the chunk began
    w_qk = pair_weights(q, k, g, g, strict=False)  # (..., J, C, C)
    to_end = torch.exp(g[..., -1:, :] - g)  # e^{G_last − G_s}, (..., J, C, K | 1)
    own = (k * to_end).transpose(-1, -2) @ v  # N_j: the chunk's own end state from S₀ = 0, (..., J, K, V)
    if a is None:  # every chunk at once: its own sums, plus the state it starts from
        start = entering_states(g[..., -1, :], own)
        o = w_qk @ v + (q * torch.exp(g)) @ start
        return o.flatten(-3, -2)[..., :n, :]
    # with the correction each chunk is an affine map of the state it starts from (module docstring)
    a, b = chunks(a), chunks(b)
    g_before = g - g_step  # G_{t−1}
    w_qb = pair_weights(q, b, g, g, strict=False)
    m_ab, m_ak = pair_weights(a, b, g_before, g, strict=True), pair_weights(a, k, g_before, g, strict=True)
    solve = torch.eye(CHUNK, dtype=acc, device=q.device) - m_ab  # unit lower triangular, (..., J, C, C)
    u0 = torch.linalg.solve_triangular(solve, m_ak @ v, upper=False, unitriangular=True)  # (..., J, C, V)
    w = torch.linalg.solve_triangular(solve, a * torch.exp(g_before), upper=False, unitriangular=True)  # (…, J, C, K)
    back = (b * to_end).transpose(-1, -2)  # B̃ᵀ, (..., J, K, C)
    shift = own + back @ u0  # R, (..., J, K, V)
    decay_end = torch.exp(g[..., -1, :])[..., None]  # diag(e^{G_last}) as a column, (..., J, K | 1, 1)
    state = torch.zeros_like(shift[..., 0, :, :])  # S₀ of the first chunk, (..., K, V) over every input's batch axes
    starts = [state]
    # the chain, unbound once (indexing chunk j inside the loop would make each step's backward write a zero tensor of
    # every chunk's size: quadratic in N)
    for d_j, back_j, w_j, r_j in zip(*(t.unbind(-3)[:-1] for t in (decay_end, back, w, shift))):
        state = d_j * state + back_j @ (w_j @ state) + r_j
        starts.append(state)
    start = torch.stack(starts, dim=-3)  # the state entering each chunk, (..., J, K, V)
    o = w_qk @ v + w_qb @ u0 + (q * torch.exp(g) + w_qb @ w) @ start
    return o.flatten(-3, -2)[..., :n, :]
