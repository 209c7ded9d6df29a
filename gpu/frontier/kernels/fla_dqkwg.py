"""fla's gated ``chunk_bwd_dqkwg`` in plain torch, registered as an fla backend where fla refuses its own kernel.

fla 0.6 refuses the backward of its gated chunked kernels on Hopper GPUs with triton >= 3.4 and < 3.7.1 (its Triton
``chunk_bwd_dqkwg`` compiles to wrong results there, fla issue #640) unless tilelang is installed; the refusal sits in
that one function, which every gated chunked op (``chunk_simple_gla``: Mamba-2; ``chunk_gated_delta_rule``: Gated
DeltaNet) calls in its backward. Everything else of those ops (the forward, the states, ``∂h``, ``∂v``) runs fla's
kernels. fla selects implementations of that function through its backend registry (``fla.backends``: a backend with
a verifier, tried before the Triton default); :func:`install_torch_backend` registers this module's form there, for the
gated, fixed-length, ``H = HV`` calls the harness makes, and only where fla would refuse (:mod:`.fla_common`). The
harness calls it from Mamba-2 and from Gated DeltaNet; with it alone, Gated DeltaNet's gradient failed its GPU test
on an H100, and with our form of the gated WY backward beside it (:mod:`.fla_wy`) it passed
(:func:`~.fla_delta.delta_rule_available` says why).

Glossary (one sequence ``b`` and head; chunk ``i`` of ``C`` positions ``t, s``; fla's names)::

    q, k (T, K), v, do (T, V)     the op's inputs and the gradient of its output
    g (T)                         the log decays cumulated inside each chunk, in log2 units (fla pre-scales by 1/ln 2)
    h[i] (K, V)                   the state entering chunk i;   dh[i] = ∂L/∂(the state leaving chunk i)
    dv (T, V), w (T, K)           the delta rule's WY terms (``∂`` of the corrected values, and the keys that read h)

Inside chunk ``i`` the forward is ``o_t = scale·(2^{g_t} q_tᵀ h[i] + Σ_{s≤t} 2^{g_t − g_s} (q_t·k_s) v_s)`` and the
state leaving it ``2^{g_ℓ} h[i] + Σ_s 2^{g_ℓ − g_s} k_s v_sᵀ`` (``ℓ`` its last position), so, with
``dS_{ts} = scale·2^{g_t − g_s} (do_t·v_s)`` for ``s ≤ t``::

    dq_t = scale·2^{g_t} h[i] do_t + Σ_{s≤t} dS_{ts} k_s
    dk_s = 2^{g_ℓ − g_s} dh[i] v_s + Σ_{t≥s} dS_{ts} q_t
    dw_t = −h[i] dv_t                                     (the delta rule's corrected values v − w h[i])
    dg_t = q_t·dq_t − k_t·dk_t,   plus at t = ℓ:  2^{g_ℓ} Σ h[i] ⊙ dh[i] + Σ_s 2^{g_ℓ − g_s} k_s·(dh[i] v_s)

``dg`` is the gradient with respect to the cumulated decay in natural-log units (``2^{g}`` is ``e^{G}``); fla's caller
reverse-cumulates it into the per-step decays. This is what fla's Triton kernel computes
(``fla/ops/common/chunk_o.py``); here the chunks are an axis, every sum a batched product, in float32 at least (fla's
kernel multiplies in the inputs' dtype with float32 accumulation). :func:`naive_chunk_dqkwg` is the same, chunk by
chunk and position by position.
"""

from __future__ import annotations

import functools
import math

import torch

from mqarkit.gpu.frontier.kernels.fla_common import gated_backward, register_torch_form

FLA_CHUNK = 64  # the chunk size of fla's gated chunked ops as the harness calls them (their default)
PAIR_TENSORS = 4  # (C, C) tensors per chunk and head that chunk_dqkwg holds at once at most (gap, decays, do·v, dS)


def gated_op_elements(fla_estimate: int, runs: int, seq_len: int, heads: int, pair_tensors: int = PAIR_TENSORS) -> int:
    """A gated fla op's per-example estimate (the micro-batch budget's unit), raised where our form computes its
    refused kernel in the backward (:func:`~.fla_common.gated_backward`) to what that form holds: its ``(C, C)``
    tensors for every chunk and head, ``pair_tensors · N · H · C`` numbers per run (``PAIR_TENSORS`` for this form;
    more where a caller's op runs a form that holds more, one after the other: the gated delta rule's WY backward,
    :data:`~.fla_wy.WY_PAIR_TENSORS`)."""
    if gated_backward() != "torch":
        return fla_estimate
    return max(fla_estimate, max(pair_tensors, PAIR_TENSORS) * runs * seq_len * heads * FLA_CHUNK)


def _chunked(x: torch.Tensor, chunk: int, dtype: torch.dtype) -> torch.Tensor:
    """``(B, T, H, W)`` -> ``(B, NT, H, C, W)`` in ``dtype``, zero-padded to whole chunks, contiguous: one copy that
    casts, pads and lays out at once (a transposed view would be copied again by every batched product it enters)."""
    b, t, h, w = x.shape
    whole, rest = divmod(t, chunk)
    out = torch.empty((b, whole + (rest > 0), h, chunk, w), dtype=dtype, device=x.device)
    by_position = out.transpose(2, 3)  # (B, NT, C, H, W): a view of out in x's order
    by_position[:, :whole].copy_(x[:, : whole * chunk].unflatten(1, (whole, chunk)))
    if rest:
        by_position[:, whole, :rest].copy_(x[:, whole * chunk :])
        by_position[:, whole, rest:].zero_()
    return out


def _unchunked(x: torch.Tensor, t: int, dtype: torch.dtype) -> torch.Tensor:
    """The inverse of :func:`_chunked`: ``(B, NT, H, C, ...)`` -> ``(B, T, H, ...)`` in ``dtype``, one copy."""
    return x.transpose(2, 3).to(dtype, memory_format=torch.contiguous_format).flatten(1, 2)[:, :t]


def chunk_dqkwg(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    do: torch.Tensor,
    h: torch.Tensor,
    dh: torch.Tensor,
    g: torch.Tensor,
    scale: float,
    chunk_size: int,
    dv: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """``dq, dk (B, T, H, K)`` in ``q``'s and ``k``'s dtypes, ``dw`` (``(B, T, H, K)`` in ``dv``'s dtype, or None
    without ``dv``) and ``dg (B, T, H)`` float32 (float64 for float64 ``g``), from ``q, k (B, T, H, K)``,
    ``v, do (B, T, H, V)``, ``h, dh (B, NT, H, K, V)``, ``g (B, T, H)`` (cumulated per chunk, log2 units) and
    ``dv (B, T, H, V)`` (module docs)."""
    t, c = q.shape[1], chunk_size
    acc = torch.promote_types(q.dtype, torch.float32)  # float32, or float64 for float64 inputs
    qc, kc, vc, doc = (_chunked(x, c, acc) for x in (q, k, v, do))  # (B, NT, H, C, ·)
    gc = _chunked(g[..., None], c, acc)[..., 0]  # (B, NT, H, C)
    hs, dhs = h.to(acc), dh.to(acc)  # (B, NT, H, K, V)
    positions = torch.arange(gc.shape[1] * c, device=q.device).view(-1, c)  # (NT, C)
    valid = positions < t
    last = (valid.sum(-1) - 1)[None, :, None, None].expand(*gc.shape[:3], 1)  # the chunk's last valid position
    g_last = gc.gather(-1, last)  # (B, NT, H, 1)
    to_end = torch.where(valid[:, None], torch.exp2(g_last - gc), 0)  # 2^{g_ℓ − g_s}, 0 past T
    pairs = (positions[:, :, None] >= positions[:, None, :]) & valid[:, :, None] & valid[:, None, :]  # s ≤ t
    gap = (gc[..., :, None] - gc[..., None, :]).masked_fill(~pairs[:, None], float("-inf"))
    ds = (doc @ vc.transpose(-1, -2)) * torch.exp2(gap) * scale  # dS_{ts}, (B, NT, H, C, C)
    dq = (doc @ hs.transpose(-1, -2)) * (torch.exp2(gc) * scale)[..., None] + ds @ kc
    dk_state = (vc @ dhs.transpose(-1, -2)) * to_end[..., None]  # through the state leaving the chunk
    dk = dk_state + ds.transpose(-1, -2) @ qc
    dg_last = torch.exp2(g_last[..., 0]) * (hs * dhs).sum((-1, -2)) + (dk_state * kc).sum((-1, -2))  # (B, NT, H)
    dg = (dq * qc).sum(-1) - (dk * kc).sum(-1)  # (B, NT, H, C)
    at_last = torch.arange(c, device=q.device) == last  # (B, NT, H, C): a comparison, no host sync (CUDA graphs)
    dg = dg + at_last * dg_last[..., None]
    dw = None if dv is None else -(_chunked(dv, c, acc) @ hs.transpose(-1, -2))
    return (
        _unchunked(dq, t, q.dtype),
        _unchunked(dk, t, k.dtype),
        None if dw is None else _unchunked(dw, t, dv.dtype),
        _unchunked(dg[..., None], t, torch.promote_types(g.dtype, torch.float32))[..., 0],
    )


def naive_chunk_dqkwg(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    do: torch.Tensor,
    h: torch.Tensor,
    dh: torch.Tensor,
    g: torch.Tensor,
    scale: float,
    chunk_size: int,
    dv: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """:func:`chunk_dqkwg` chunk by chunk and position by position, in the inputs' dtype (the tests' float64)."""
    t = q.shape[1]
    dq, dk, dg = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(g)
    dw = None if dv is None else torch.zeros_like(q)
    for i in range(math.ceil(t / chunk_size)):
        start, end = i * chunk_size, min((i + 1) * chunk_size, t)
        h_i, dh_i = h[:, i], dh[:, i]  # (B, H, K, V)
        g_end = g[:, end - 1]  # (B, H)
        for x in range(start, end):
            dq[:, x] = scale * torch.exp2(g[:, x])[..., None] * (h_i @ do[:, x, :, :, None])[..., 0]
            dk[:, x] = torch.exp2(g_end - g[:, x])[..., None] * (dh_i @ v[:, x, :, :, None])[..., 0]
            dg[:, end - 1] += (dk[:, x] * k[:, x]).sum(-1)  # the state leaving the chunk, through its decay
            if dv is not None:
                dw[:, x] = -(h_i @ dv[:, x, :, :, None])[..., 0]
        for x in range(start, end):  # the pairs inside the chunk (s ≤ t)
            for s in range(start, x + 1):
                d_s = scale * torch.exp2(g[:, x] - g[:, s]) * (do[:, x] * v[:, s]).sum(-1)  # (B, H)
                dq[:, x] += d_s[..., None] * k[:, s]
                dk[:, s] += d_s[..., None] * q[:, x]
        for x in range(start, end):
            dg[:, x] += (dq[:, x] * q[:, x]).sum(-1) - (dk[:, x] * k[:, x]).sum(-1)
        dg[:, end - 1] += torch.exp2(g_end) * (h_i * dh_i).sum((-1, -2))
    return dq, dk, dw, dg


def _fla_call(
    q, k, v, do, h, dh, w=None, g=None, g_gamma=None, dv=None, scale=None, state_v_first=False, cu_seqlens=None,
    chunk_size=FLA_CHUNK, chunk_indices=None,
) -> dict:  # fmt: skip
    """A call of fla's ``chunk_bwd_dqkwg`` (its signature, fla 0.6) by argument name, however it was passed."""
    return locals()


def serves(*args, **kwargs) -> tuple[bool, str | None]:
    """fla's verifier answer for a call of ``chunk_bwd_dqkwg`` (its arguments as fla passes them): the calls the
    harness makes (a decay per step, a scale, equal lengths, as many value as query heads, states ``K × V``), or why
    not."""
    call = _fla_call(*args, **kwargs)
    if call["scale"] is None:
        return False, "mqarkit's torch form takes the scale fla's ops pass"
    if call["g"] is None or call["g_gamma"] is not None:
        return False, "mqarkit's torch form takes a decay per step (g), not none or g_gamma"
    if call["cu_seqlens"] is not None:
        return False, "mqarkit's torch form takes sequences of equal length (no cu_seqlens)"
    if call["v"].shape[2] != call["k"].shape[2] or call["state_v_first"]:
        return False, "mqarkit's torch form takes as many value as query heads and K × V states"
    return True, None


def fla_chunk_bwd_dqkwg(*args, **kwargs):
    """:func:`chunk_dqkwg` called as fla calls ``chunk_bwd_dqkwg`` (``dv`` is read only with the delta rule's ``w``,
    as fla's kernel reads it)."""
    call = _fla_call(*args, **kwargs)
    dv = call["dv"] if call["w"] is not None else None
    names = ("q", "k", "v", "do", "h", "dh", "g", "scale", "chunk_size")
    return chunk_dqkwg(*(call[n] for n in names), dv=dv)


@functools.cache
def install_torch_backend() -> None:
    """Register :func:`chunk_dqkwg` as fla's ``chunk_bwd_dqkwg`` backend (operation ``common``), once per process."""
    register_torch_form("common", "chunk_bwd_dqkwg", serves, fla_chunk_bwd_dqkwg)


def prepare_gated_backward() -> None:
    """Before a gated fla op runs: register this form with fla where :func:`~.fla_common.gated_backward` says
    ``"torch"`` (once per process). The callers are ``torch.compiler.disable``-d, so this never runs traced."""
    if gated_backward() == "torch":
        install_torch_backend()
