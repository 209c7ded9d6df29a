"""Operations on stacked tensors: every tensor carries the run dimension ``R`` first, every weight is per run.

``linear`` is one batched matmul over the runs; ``layer_norm`` takes a per-run affine; the causal convolutions, the
query-row gather and the causal cumulative sum are what the families and the fused trunk share.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def training_autocast(device: torch.device) -> torch.autocast:
    """The precision the harness trains in: bf16 autocast on CUDA (its weight-cast cache off, as CUDA-graph capture
    requires; each weight is cast once per forward anyway), float32 elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda", cache_enabled=False)


# ---------------------------------------------------------------- stacked primitives
def linear(u: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``u @ w + b`` per run: ``u (R, ..., i)``, ``w (R, i, o)``, ``b (R, o)`` -> ``(R, ..., o)``."""
    r, i = u.shape[0], u.shape[-1]
    flat = u.reshape(r, -1, i)
    out = torch.baddbmm(b.unsqueeze(1), flat, w) if b is not None else torch.bmm(flat, w)
    return out.reshape(*u.shape[:-1], w.shape[-1])


# The width of a fused projection (:func:`fused_projection`) is rounded up to a multiple of this many columns.
PROJECTION_ALIGN = 8


def fused_projection(u: torch.Tensor, weights: list[torch.Tensor]) -> list[torch.Tensor]:
    """``[u @ w for w in weights]`` per run as one batched matmul: ``u (R, ..., i)``, ``weights`` each ``(R, i, o_j)``
    -> ``[(R, ..., o_j)]``, views of one output whose width is padded with zero columns to a multiple of
    :data:`PROJECTION_ALIGN`.

    Why the padding: compiled on CUDA, inductor may pad a half-precision matmul whose output width is not a multiple
    of 8 itself (its ``pad_mm`` pass, chosen by benchmarking, so never on the CPU) and hand on a slice of the padded
    output. DeltaNet's stack (868 = 3·288 + 4 columns) compiled that way failed, once compiled again for a second
    sequence length, with inductor's assertion that a ``(R, B, N, 288)`` slice had the strides of ``N = 64``, the
    first length (``assert_size_stride(getitem, (12, s20, s64, 288), (14286848, 55808, 872, 1))``, H100, third and
    ninth sessions: ``docs/results/frontier_protocol.md``); the likely cause, read from that log. With the width
    aligned here nothing is left for that pass to pad; since then the compiled DeltaNet and Gated DeltaNet models
    passed their H100 test at two lengths without the assertion (eleventh session), which is consistent with that
    cause but does not isolate it.
    """
    widths = [w.shape[-1] for w in weights]
    pad = -sum(widths) % PROJECTION_ALIGN
    if pad:
        weights = [*weights, weights[-1].new_zeros(*weights[-1].shape[:-1], pad)]
    return list(linear(u, torch.cat(weights, dim=-1)).split([*widths, pad] if pad else widths, dim=-1))[: len(widths)]


def layer_norm(u: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """LayerNorm over the last dim with per-run affine ``w, b (R, d)``; ``u (R, ..., d)``."""
    y = F.layer_norm(u, u.shape[-1:], eps=eps)
    shape = (w.shape[0], *([1] * (u.dim() - 2)), w.shape[-1])
    return torch.addcmul(b.view(shape), y, w.view(shape))  # b + y·w in one kernel


def causal_depthwise_conv(u: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``y_t = b + Σ_{s<k} w[..., s] u_{t-s}``; ``u (R, B, N, d)``, ``w (R, d, k)`` (tap ``s`` = lag ``s``).

    Lag ``s`` reads ``u`` shifted down by ``s`` rows with zeros on top (``F.pad`` of the sequence axis), so the
    expression is free of in-place updates and fuses into one kernel when compiled.
    """
    n, k = u.shape[2], w.shape[-1]
    y = u * w[:, None, None, :, 0] + b[:, None, None, :]
    for s in range(1, min(k, n)):
        y = y + F.pad(u[:, :, : n - s], (0, 0, s, 0)) * w[:, None, None, :, s]
    return y


def short_conv_gate(u: torch.Tensor, w: torch.Tensor, b: torch.Tensor, lin: torch.Tensor) -> torch.Tensor:
    """BaseConv's ``conv_k(u) ⊙ lin + u`` (``lin = W u + b`` computed outside by a batched matmul)."""
    return causal_depthwise_conv(u, w, b) * lin + u


def fft_causal_conv(u: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``y_t = Σ_{s≤t} h[..., s] u_{t-s}`` by FFT (float32 at least); ``u (R, B, N, d)``, ``h (R, d, L ≥ N)``."""
    n = u.shape[2]
    size = 2 * n
    acc = torch.promote_types(u.dtype, torch.float32)  # the FFT needs float32 at least
    uf = torch.fft.rfft(u.to(acc).transpose(2, 3), n=size)  # (R, B, d, n+1)
    hf = torch.fft.rfft(h[..., :n].to(acc), n=size)  # (R, d, n+1)
    y = torch.fft.irfft(uf * hf[:, None], n=size)[..., :n]
    return y.transpose(2, 3).to(u.dtype)


def toeplitz_causal_conv(u: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The same ``y_t = Σ_{s≤t} h[..., s] u_{t-s}`` as :func:`fft_causal_conv`, as one matmul per run and channel with
    the lower-triangular Toeplitz matrix ``T[t, s] = h[t − s]`` (float32 at least, autocast off); ``u (R, B, N, d)``,
    ``h (R, d, L ≥ N)``.

    Its cost is ``O(R d N² B)`` multiply-adds and an ``(R, d, N, N)`` matrix, so it serves short sequences. ``T`` is
    gathered from the taps by the lags ``t − s`` (:func:`toeplitz_matrix`), and the taps' gradient is the sum of
    ``T``'s gradient along its diagonals, gathered by the same lags (:class:`_ToeplitzConv`): both hold for a symbolic
    ``N``, so one compiled graph of this function serves every length up to :data:`TOEPLITZ_MAX_LEN` (tested).
    (``unfold``, which builds the same ``T`` as a view of the zero-padded taps, makes ``torch.compile`` specialise on
    ``N`` and compile once per length: ``docs/results/frontier_protocol.md``, twentieth session.)
    """
    n = u.shape[2]
    acc = torch.promote_types(u.dtype, torch.float32)
    with torch.autocast(u.device.type, enabled=False):
        y = _ToeplitzConv.apply(u.to(acc).permute(0, 3, 2, 1), h[..., :n].to(acc))  # (R, d, N, B)
    return y.permute(0, 3, 2, 1).to(u.dtype)


def _lags(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """For ``n`` positions: the lags ``t − s`` clamped at 0, ``(N, N)`` int64, and where they are ``≥ 0``."""
    i = torch.arange(n, device=device)
    lag = i[:, None] - i[None, :]
    return lag.clamp(min=0), lag >= 0


def toeplitz_matrix(taps: torch.Tensor) -> torch.Tensor:
    """``T[..., t, s] = taps[..., t − s]`` for ``s ≤ t``, else 0: ``taps (..., N)`` -> ``(..., N, N)``."""
    lag, causal = _lags(taps.shape[-1], taps.device)
    return torch.where(causal, taps[..., lag], 0.0)


def diagonal_sums(g: torch.Tensor) -> torch.Tensor:
    """``Σ_{t≥l} g[..., t, t − l]`` for each lag ``l``: ``g (..., N, N)`` -> ``(..., N)``, the adjoint of
    :func:`toeplitz_matrix` (the gradient of the taps from the gradient of ``T``). Row ``t``, column ``l`` of the
    gathered matrix is ``g[t, t − l]``, by the same lags that built ``T``."""
    lag, causal = _lags(g.shape[-1], g.device)
    return torch.where(causal, g.gather(-1, lag.expand(g.shape)), 0.0).sum(-2)


class _ToeplitzConv(torch.autograd.Function):
    """``y = T(h) v`` for ``v (R, d, N, B)``, ``h (R, d, N)``; backward ``∂v = Tᵀ ∂y``, ``∂T = ∂y vᵀ``,
    ``∂h = diagonal_sums(∂T)``."""

    @staticmethod
    def forward(ctx, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        t = toeplitz_matrix(h)  # (R, d, N, N)
        ctx.save_for_backward(t, v)
        return torch.matmul(t, v)

    @staticmethod
    def backward(ctx, dy: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        t, v = ctx.saved_tensors
        dv = torch.matmul(t.transpose(-1, -2), dy) if ctx.needs_input_grad[0] else None
        dh = diagonal_sums(torch.matmul(dy, v.transpose(-1, -2))) if ctx.needs_input_grad[1] else None
        return dv, dh


# The longest sequence the long convolutions take as a Toeplitz matmul: at every length measured on an H100 up to
# this one (N = 64, 128, 256; d = 64–256; a 12-run stack at batch 256, float32) the matmul's forward and backward took
# 1.9–3.3× less time than the FFT's (docs/results/causal_conv.md); longer sequences keep the FFT, whose cost grows as
# N log N where the matmul's grows as N².
TOEPLITZ_MAX_LEN = 256


def causal_long_conv(u: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``y_t = Σ_{s≤t} h[..., s] u_{t-s}``, ``u (R, B, N, d)``, ``h (R, d, L ≥ N)``: :func:`toeplitz_causal_conv` up
    to :data:`TOEPLITZ_MAX_LEN` positions, :func:`fft_causal_conv` beyond (the same sum; they differ by rounding)."""
    if u.shape[2] <= TOEPLITZ_MAX_LEN:
        return toeplitz_causal_conv(u, h)
    return fft_causal_conv(u, h)


def causal_cumsum(t: torch.Tensor) -> torch.Tensor:
    """``Σ_{s≤n} t[:, :, s]`` over the positions of ``t (R, B, N, H)``, as a product (float32 at least) with the
    ``(N, N)`` lower-triangular ones matrix (autocast off).

    ``torch.cumsum`` says the same, but inductor (torch 2.11) fails to generate its split scan over a dynamic length
    (``InductorError`` in ``get_block_shape``, seen on an H100 at ``N = 256``); the product costs ``O(N²H)`` per
    sequence, small next to the ``(R, B, D, N, H)`` decays it feeds.
    """
    n = t.shape[2]
    acc = torch.promote_types(t.dtype, torch.float32)
    ones = torch.ones(n, n, device=t.device, dtype=acc).tril()
    with torch.autocast(t.device.type, enabled=False):
        return torch.matmul(ones, t.to(acc))


def gather_rows(t: torch.Tensor, qpos: torch.Tensor) -> torch.Tensor:
    """``t[r, b, qpos[b, j]]``: ``t (R, B, N, C)``, ``qpos (B, D)`` -> ``(R, B, D, C)``."""
    return t[:, torch.arange(t.shape[1], device=t.device)[:, None], qpos]


# ---------------------------------------------------------------- initialisation of one run (from its own generator)
INIT_STD = 0.02  # the reference's normal initialisation of projections and embeddings


def init_normal(shape: tuple[int, ...], generator: torch.Generator, std: float = INIT_STD) -> torch.Tensor:
    """``N(0, std²)`` entries (float32, CPU) drawn from ``generator``."""
    return torch.randn(shape, generator=generator) * std


def init_conv(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """A depthwise filter of ``shape[-1]`` taps as PyTorch's ``Conv1d`` default: ``U(-1/√k, 1/√k)``."""
    return (torch.rand(shape, generator=generator) * 2 - 1) / math.sqrt(shape[-1])
