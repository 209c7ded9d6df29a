"""Block 0 of the stacked hybrid and the norm that opens block 1, fused: Triton kernels and their naive reference.

Symbols (per run ``r``; every vector has ``d`` entries, products ``⊙`` are element-wise): ``x`` the tokens ``(B, N)``,
``E`` the embedding ``(c, d)``, ``W0, b0`` layer 0's projection, ``κ_s`` (``s < K``) its short causal filter's taps and
``κ_b`` its bias, ``LN_w,b(v) = (v − mean v)·rstd(v)·w + b`` with ``rstd(v) = 1/√(var v + 1e-5)``. Per position
``n`` of one sequence::

    h_n  = E[x_n]
    a_n  = LN0a(h_n)                          (a_{n−s} = 0 for n − s < 0)
    l_n  = a_n W0 + b0                        (matrix product, in the autocast dtype: bf16 on CUDA)
    c_n  = κ_b + Σ_{s<K} κ_s ⊙ a_{n−s}
    m_n  = c_n ⊙ l_n + a_n                    (BaseConv: conv(u) ⊙ (W u + b) + u)
    ρ_n  = h_n + m_n                          (block 0's residual)
    r_n  = ρ_n + LN0b(ρ_n)                    (block 0 hands LN2(ρ) on, block 1 adds it to ρ)
    u_n  = LN1a(r_n)                          (block 1's mixer input)

which is :meth:`~mqarkit.gpu.frontier.model.StackedHybrid._trunk` after the embedding. The layer that follows (block 1's
mixer) reads ``u`` at every position and ``r`` only at the query positions ``qpos (B, D)``, so the outputs are
``u (R, B, N, d)`` and ``r`` at the query rows, ``(R, B·D, d)``.

:func:`trunk_reference` is that computation in torch operations (autograd differentiates it). :func:`fused_trunk`
computes the same with four Triton kernels and layer 0's projection as batched matrix products (one forward, two
backward), keeping only ``x``, ``A = a`` (the
product's input, in its dtype) and ``l`` between forward and backward; everything else is recomputed from ``E[x]``
(a gather from a table that stays in L2):

- ``_ln_embed_kernel`` (forward): ``A = LN0a(E[x])`` in the product's dtype; then ``l = A W0 + b0`` by ``baddbmm``;
- ``_block0_kernel`` (forward): ``c, m, ρ, r, u`` from ``E[x]`` (``a_{n−s}`` recomputed for each tap) and ``l``;
  writes ``u`` and ``r`` at the query rows;
- ``_block0_grad_kernel`` (backward, first half), with ``g_u = ∂L/∂u`` and ``g_r`` at the query rows::

      ∂L/∂r = LN1a'ᵀ g_u + g_r,      ∂L/∂ρ = ∂L/∂r + LN0b'ᵀ ∂L/∂r,      ∂L/∂m = ∂L/∂ρ
      ∂L/∂l = ∂L/∂m ⊙ c              (written in the product's dtype, for the two products of the backward)
      ∂L/∂c = ∂L/∂m ⊙ l              (not written: the second half recomputes it)

  and the parameter gradients of ``LN1a, LN0b, b0``;
- ``∂L/∂A = ∂L/∂l W0ᵀ`` and ``∂L/∂W0 = Aᵀ ∂L/∂l`` by ``bmm``;
- ``_embed_grad_kernel`` (backward, second half)::

      ∂L/∂a_n = ∂L/∂m_n + ∂L/∂A_n + Σ_{s<K} κ_s ⊙ ∂L/∂c_{n+s}        (∂L/∂c_{n+s} = 0 past the sequence's end)
      ∂L/∂h_n = ∂L/∂ρ_n + LN0a'ᵀ ∂L/∂a_n

  and the parameter gradients of ``LN0a``, of ``κ_b`` (``Σ_n ∂L/∂c_n``) and of ``κ_s`` (``Σ_n ∂L/∂c_{n+s} ⊙ a_n``,
  from the ``∂L/∂c_{n+s}`` the kernel loads anyway; one accumulator per tap, so ``K ≤ MAX_TAPS``); ``∂L/∂E`` is the
  embedding's backward of ``∂L/∂h`` (sort and segment sum, as ``F.embedding``'s).

``LN'ᵀ g`` is the LayerNorm backward ``rstd·(γ − mean γ − x̂·mean(γ ⊙ x̂))`` with ``γ = g ⊙ w`` and ``x̂`` the
normalised input; the affine gradients are ``Σ g ⊙ x̂`` and ``Σ g``. Parameter gradients are sums over the rows of a
run: every program sums its rows in registers and writes them to its own slot of a ``(R, programs, ·, d)`` float32
buffer (no atomics), and torch sums the slots.

Precision: the kernels compute in float32; ``A``, ``l``, ``∂L/∂l`` and ``∂L/∂A`` are in the product's dtype (bf16
under CUDA autocast, as autocast's ``baddbmm`` has them), ``u`` in ``u_dtype`` (default: the product's dtype, which is
what every consumer casts it to), ``r`` in float32.

Query rows: ``qpos`` may name a position twice; each row's ``r`` is written once (to the one of its slots that a
scatter of the slot numbers kept) and copied to the others, and the gradients of the duplicates are summed before the
backward reads them.

Dispatch: the kernels run for CUDA tensors (any device under the Triton interpreter, ``TRITON_INTERPRET=1`` at
import) when triton imports, the filter has at most ``MAX_TAPS`` taps and ``MQARKIT_FUSED_TRUNK`` is not ``0``
(read per call); :func:`fused_trunk_available` says so, and the caller computes the trunk with the model's own
operations (what :func:`trunk_reference` does) otherwise.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from mqarkit.gpu.device import kernel_switched_on, launch_device, runs_interpreted
from mqarkit.gpu.frontier.ops import gather_rows

try:  # guarded: CI and CPU machines have no triton
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None
    tl = None

EPS = 1e-5  # LayerNorm's epsilon (F.layer_norm's default, as the model uses)
# Block configuration, measured on an H100 (triton 3.6, 12 runs, d = 64 and 128, (B, N) = (256, 64) and (256, 256)):
# (TILE, WARPS) in {(2048, 8), (1024, 8), (1024, 4), (512, 4), (512, 8), (256, 4)} with 8 row blocks per program,
# then 32 row blocks: the small 4-warp blocks win (the kernels wait on the E[x] gathers more than they compute; more
# blocks in flight hide that) and 32 row blocks beat 8 (fewer partial sums). At d = 128, (256, 256): forward
# 0.17 + 0.67, backward 1.41 + 0.92 ms with (512, 4, 8) against 0.13 + 0.79, 1.71 + 1.14 ms with (2048, 8, 8).
TILE = 512  # elements of one (rows, d) block held in registers: rows = TILE // padded d
WARPS = 4  # warps per program
ROW_BLOCKS = 32  # row blocks per program in the backward kernels (fewer partial-sum slots to reduce)
MAX_TAPS = 4  # the backward kernel keeps one accumulator per filter tap: K <= MAX_TAPS
PARAMS = ("ln0a_w", "ln0a_b", "c0_w", "c0_b", "c0_k", "c0_kb", "ln0b_w", "ln0b_b", "ln1a_w", "ln1a_b")


# --------------------------------------------------------------------------------------------------------------------
# the reference
# --------------------------------------------------------------------------------------------------------------------
def trunk_reference(model, x: torch.Tensor, qpos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``u (R, B, N, d)`` and ``r`` at the query rows ``(R, B·D, d)`` by the model's own torch operations.

    ``model`` a :class:`~mqarkit.gpu.frontier.model.StackedHybrid`, ``x (B, N)`` int64, ``qpos (B, D)`` integer
    positions.
    """
    r, u = model._trunk(model.embed(x))
    r_q = gather_rows(r, qpos)
    return u, r_q.reshape(r_q.shape[0], -1, r_q.shape[-1])


# --------------------------------------------------------------------------------------------------------------------
# the kernels
# --------------------------------------------------------------------------------------------------------------------
if triton is not None:

    @triton.jit
    def _normalise(v, col_ok, d, eps):
        """``(x̂, rstd)`` of the rows of ``v (BM, BD)`` over its ``d`` real columns (the others are 0 in ``v`` and
        in ``x̂``)."""
        mean = tl.sum(v, axis=1) / d
        diff = tl.where(col_ok[None, :], v - mean[:, None], 0.0)
        rstd = 1.0 / tl.sqrt(tl.sum(diff * diff, axis=1) / d + eps)
        return diff * rstd[:, None], rstd

    @triton.jit
    def _norm_grad(g, xhat, rstd, w, col_ok, d):
        """``LN'ᵀ g`` for ``LN = x̂·w + b``: ``rstd·(γ − mean γ − x̂·mean(γ ⊙ x̂))``, ``γ = g ⊙ w`` (0 off the ``d``
        real columns)."""
        gam = g * w[None, :]
        mean_g = tl.sum(gam, axis=1) / d
        mean_gx = tl.sum(gam * xhat, axis=1) / d
        return tl.where(col_ok[None, :], rstd[:, None] * (gam - mean_g[:, None] - xhat * mean_gx[:, None]), 0.0)

    @triton.jit
    def _embedded(x_ptr, e_ptr, rows, ok, cols, col_ok, d):
        """``E[x[rows]]`` as a float32 ``(BM, BD)`` block, 0 where ``ok`` is False; ``e_ptr`` at run ``r``'s table."""
        tok = tl.load(x_ptr + rows, mask=ok, other=0)
        return tl.load(e_ptr + tok[:, None] * d + cols[None, :], mask=ok[:, None] & col_ok[None, :], other=0.0)

    @triton.jit
    def _a_rows(x_ptr, e_ptr, w0a, b0a, rows, ok, cols, col_ok, d, eps):
        """``a = LN0a(E[x[rows]])`` ``(BM, BD)``, 0 on the rows where ``ok`` is False (the filter's zero padding)."""
        xhat, _ = _normalise(_embedded(x_ptr, e_ptr, rows, ok, cols, col_ok, d), col_ok, d, eps)
        return tl.where(ok[:, None] & col_ok[None, :], xhat * w0a[None, :] + b0a[None, :], 0.0)

    @triton.jit
    def _vec(ptr, cols, col_ok):
        return tl.load(ptr + cols, mask=col_ok, other=0.0)

    @triton.jit
    def _ln_embed_kernel(
        x_ptr, e_ptr, w0a_ptr, b0a_ptr, a_ptr,  # x (T,) int64; E (R, c, d); LN0a (R, d); A (R, T, d) out
        T, C, d, eps, BM: tl.constexpr, BD: tl.constexpr,
    ):  # fmt: skip
        r = tl.program_id(1).to(tl.int64)
        rows = tl.program_id(0).to(tl.int64) * BM + tl.arange(0, BM)
        cols = tl.arange(0, BD)
        ok, col_ok = rows < T, cols < d
        w0a, b0a = _vec(w0a_ptr + r * d, cols, col_ok), _vec(b0a_ptr + r * d, cols, col_ok)
        a = _a_rows(x_ptr, e_ptr + r * C * d, w0a, b0a, rows, ok, cols, col_ok, d, eps)
        off = r * T * d + rows[:, None] * d + cols[None, :]
        tl.store(a_ptr + off, a.to(a_ptr.dtype.element_ty), mask=ok[:, None] & col_ok[None, :])

    @triton.jit
    def _tap(k_ptr, cols, col_ok, s, K: tl.constexpr):
        """Tap ``s`` of the filter ``k (d, K)`` as a ``(1, BD)`` row."""
        return tl.load(k_ptr + cols * K + s, mask=col_ok, other=0.0)[None, :]

    @triton.jit
    def _block0_rows(
        x_ptr, e_ptr, lin_ptr, k_ptr, kb, w0a, b0a, w0b, b0b,
        rows, n, ok, cols, col_ok, r, T, d, eps, K: tl.constexpr,
    ):  # fmt: skip
        """Forward of the module docstring on a block of rows up to ``ρ``: ``c, l, ρ`` and ``LN0b``'s ``x̂, rstd``,
        float32 ``(BM, BD)`` (``k_ptr`` at run ``r``'s taps ``(d, K)``)."""
        h = _embedded(x_ptr, e_ptr, rows, ok, cols, col_ok, d)
        xa, _ = _normalise(h, col_ok, d, eps)
        a = tl.where(ok[:, None] & col_ok[None, :], xa * w0a[None, :] + b0a[None, :], 0.0)
        c = kb[None, :] + _tap(k_ptr, cols, col_ok, 0, K) * a
        for s in tl.static_range(1, K):
            shifted_ok = ok & (n >= s)
            a_s = _a_rows(x_ptr, e_ptr, w0a, b0a, rows - s, shifted_ok, cols, col_ok, d, eps)
            c += _tap(k_ptr, cols, col_ok, s, K) * a_s
        mask = ok[:, None] & col_ok[None, :]
        lin = tl.load(lin_ptr + r * T * d + rows[:, None] * d + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        rho = h + (c * lin + a)
        xb, rstd_b = _normalise(rho, col_ok, d, eps)
        return c, lin, rho, xb, rstd_b

    @triton.jit
    def _block0_kernel(
        x_ptr, e_ptr, lin_ptr, qrow_ptr, k_ptr, kb_ptr, w0a_ptr, b0a_ptr, w0b_ptr, b0b_ptr, w1a_ptr, b1a_ptr,
        u_ptr, rq_ptr,  # u (R, T, d) out; r at the query rows (R, Q, d) out
        T, N, C, d, Q, eps, K: tl.constexpr, BM: tl.constexpr, BD: tl.constexpr,
    ):  # fmt: skip
        r = tl.program_id(1).to(tl.int64)
        rows = tl.program_id(0).to(tl.int64) * BM + tl.arange(0, BM)
        cols = tl.arange(0, BD)
        ok, col_ok = rows < T, cols < d
        pv = r * d
        w0a, b0a = _vec(w0a_ptr + pv, cols, col_ok), _vec(b0a_ptr + pv, cols, col_ok)
        w0b, b0b = _vec(w0b_ptr + pv, cols, col_ok), _vec(b0b_ptr + pv, cols, col_ok)
        _, _, rho, xb, _ = _block0_rows(
            x_ptr, e_ptr + r * C * d, lin_ptr, k_ptr + r * d * K, _vec(kb_ptr + pv, cols, col_ok), w0a, b0a, w0b, b0b,
            rows, rows % N, ok, cols, col_ok, r, T, d, eps, K,
        )  # fmt: skip
        res = rho + xb * w0b[None, :] + b0b[None, :]
        x1, _ = _normalise(res, col_ok, d, eps)
        u = x1 * _vec(w1a_ptr + pv, cols, col_ok)[None, :] + _vec(b1a_ptr + pv, cols, col_ok)[None, :]
        mask = ok[:, None] & col_ok[None, :]
        tl.store(u_ptr + r * T * d + rows[:, None] * d + cols[None, :], u.to(u_ptr.dtype.element_ty), mask=mask)
        slot = tl.load(qrow_ptr + rows, mask=ok, other=-1).to(tl.int64)
        qmask = mask & (slot >= 0)[:, None]
        tl.store(rq_ptr + r * Q * d + slot[:, None] * d + cols[None, :], res, mask=qmask)

    @triton.jit
    def _block0_grad_kernel(
        x_ptr, e_ptr, lin_ptr, qrow_ptr, k_ptr, kb_ptr, w0a_ptr, b0a_ptr, w0b_ptr, b0b_ptr, w1a_ptr,
        gu_ptr, grq_ptr,  # ∂L/∂u (R, T, d); ∂L/∂r at the query rows (R, Q, d), duplicates summed
        gm_ptr, glin_ptr, part_ptr,  # ∂L/∂m (R, T, d) float32 out; ∂L/∂l (R, T, d) out; partials (R, P, 5, BD)
        T, N, C, d, Q, P, eps,
        K: tl.constexpr, BM: tl.constexpr, BD: tl.constexpr, ROW_BLOCKS: tl.constexpr,
    ):  # fmt: skip
        # partial slots: 0 LN1a w, 1 LN1a b, 2 LN0b w, 3 LN0b b, 4 b0; summed over this program's rows in registers
        r = tl.program_id(1).to(tl.int64)
        pid = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BD)
        col_ok = cols < d
        pv = r * d
        e_run, k_run = e_ptr + r * C * d, k_ptr + r * d * K
        w0a, b0a = _vec(w0a_ptr + pv, cols, col_ok), _vec(b0a_ptr + pv, cols, col_ok)
        w0b, b0b = _vec(w0b_ptr + pv, cols, col_ok), _vec(b0b_ptr + pv, cols, col_ok)
        kb, w1a = _vec(kb_ptr + pv, cols, col_ok), _vec(w1a_ptr + pv, cols, col_ok)
        acc_w1 = tl.zeros((BM, BD), tl.float32)
        acc_b1 = tl.zeros((BM, BD), tl.float32)
        acc_w0 = tl.zeros((BM, BD), tl.float32)
        acc_b0 = tl.zeros((BM, BD), tl.float32)
        acc_lin = tl.zeros((BM, BD), tl.float32)
        for blk in range(ROW_BLOCKS):
            rows = (pid * ROW_BLOCKS + blk) * BM + tl.arange(0, BM)
            ok = rows < T
            mask = ok[:, None] & col_ok[None, :]
            c, lin, rho, xb, rstd_b = _block0_rows(
                x_ptr, e_run, lin_ptr, k_run, kb, w0a, b0a, w0b, b0b, rows, rows % N, ok, cols, col_ok, r, T, d, eps, K
            )
            x1, rstd_1 = _normalise(rho + xb * w0b[None, :] + b0b[None, :], col_ok, d, eps)
            off = r * T * d + rows[:, None] * d + cols[None, :]
            gu = tl.load(gu_ptr + off, mask=mask, other=0.0).to(tl.float32)
            acc_w1 += gu * x1
            acc_b1 += gu
            slot = tl.load(qrow_ptr + rows, mask=ok, other=-1).to(tl.int64)
            g_res = _norm_grad(gu, x1, rstd_1, w1a, col_ok, d) + tl.load(
                grq_ptr + r * Q * d + slot[:, None] * d + cols[None, :], mask=mask & (slot >= 0)[:, None], other=0.0
            )
            acc_w0 += g_res * xb
            acc_b0 += g_res
            gm = g_res + _norm_grad(g_res, xb, rstd_b, w0b, col_ok, d)  # ∂L/∂ρ = ∂L/∂m
            glin = gm * c
            acc_lin += glin
            tl.store(gm_ptr + off, gm, mask=mask)
            tl.store(glin_ptr + off, glin.to(glin_ptr.dtype.element_ty), mask=mask)
        part = part_ptr + (r * P + pid) * 5 * BD + cols
        tl.store(part, tl.sum(acc_w1, axis=0))
        tl.store(part + BD, tl.sum(acc_b1, axis=0))
        tl.store(part + 2 * BD, tl.sum(acc_w0, axis=0))
        tl.store(part + 3 * BD, tl.sum(acc_b0, axis=0))
        tl.store(part + 4 * BD, tl.sum(acc_lin, axis=0))

    @triton.jit
    def _conv_grad_at(gm_ptr, lin_ptr, off, s, n, N, d, mask):
        """``∂L/∂c`` at row ``n + s`` of the same sequence (``∂L/∂m ⊙ l`` there; 0 past the sequence's end)."""
        later = mask & (n + s < N)[:, None]
        lin = tl.load(lin_ptr + off + s * d, mask=later, other=0.0).to(tl.float32)
        return tl.load(gm_ptr + off + s * d, mask=later, other=0.0) * lin

    @triton.jit
    def _embed_grad_kernel(
        x_ptr, e_ptr, lin_ptr, k_ptr, w0a_ptr, b0a_ptr, gm_ptr, ga_ptr,  # ∂L/∂m (R, T, d) f32; ∂L/∂A (R, T, d)
        gh_ptr, part_ptr,  # ∂L/∂h (R, T, d) float32 out; partials (R, P, 3 + K, BD)
        T, N, C, d, P, eps,
        K: tl.constexpr, BM: tl.constexpr, BD: tl.constexpr, ROW_BLOCKS: tl.constexpr,
    ):  # fmt: skip
        # partial slots: 0 LN0a w, 1 LN0a b, 2 κ_b, 3 + s κ_s (s < K <= 4); κ_s's gradient Σ_n ∂L/∂c_n ⊙ a_{n−s}
        # is summed here as Σ_n ∂L/∂c_{n+s} ⊙ a_n, from the ∂L/∂c_{n+s} this kernel loads anyway
        r = tl.program_id(1).to(tl.int64)
        pid = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BD)
        col_ok = cols < d
        e_run, k_run = e_ptr + r * C * d, k_ptr + r * d * K
        w0a, b0a = _vec(w0a_ptr + r * d, cols, col_ok), _vec(b0a_ptr + r * d, cols, col_ok)
        acc_w = tl.zeros((BM, BD), tl.float32)
        acc_b = tl.zeros((BM, BD), tl.float32)
        acc_kb = tl.zeros((BM, BD), tl.float32)
        acc_k0 = tl.zeros((BM, BD), tl.float32)
        acc_k1 = tl.zeros((BM, BD), tl.float32)
        acc_k2 = tl.zeros((BM, BD), tl.float32)
        acc_k3 = tl.zeros((BM, BD), tl.float32)
        for blk in range(ROW_BLOCKS):
            rows = (pid * ROW_BLOCKS + blk) * BM + tl.arange(0, BM)
            ok = rows < T
            n = rows % N
            mask = ok[:, None] & col_ok[None, :]
            off = r * T * d + rows[:, None] * d + cols[None, :]
            xa, rstd_a = _normalise(_embedded(x_ptr, e_run, rows, ok, cols, col_ok, d), col_ok, d, eps)
            xa = tl.where(mask, xa, 0.0)
            a = tl.where(mask, xa * w0a[None, :] + b0a[None, :], 0.0)
            gm = tl.load(gm_ptr + off, mask=mask, other=0.0)
            gc = gm * tl.load(lin_ptr + off, mask=mask, other=0.0).to(tl.float32)
            acc_kb += gc
            acc_k0 += gc * a
            ga = gm + tl.load(ga_ptr + off, mask=mask, other=0.0).to(tl.float32) + _tap(k_run, cols, col_ok, 0, K) * gc
            if K > 1:
                gc = _conv_grad_at(gm_ptr, lin_ptr, off, 1, n, N, d, mask)
                acc_k1 += gc * a
                ga += _tap(k_run, cols, col_ok, 1, K) * gc
            if K > 2:
                gc = _conv_grad_at(gm_ptr, lin_ptr, off, 2, n, N, d, mask)
                acc_k2 += gc * a
                ga += _tap(k_run, cols, col_ok, 2, K) * gc
            if K > 3:
                gc = _conv_grad_at(gm_ptr, lin_ptr, off, 3, n, N, d, mask)
                acc_k3 += gc * a
                ga += _tap(k_run, cols, col_ok, 3, K) * gc
            acc_w += ga * xa
            acc_b += ga
            tl.store(gh_ptr + off, gm + _norm_grad(ga, xa, rstd_a, w0a, col_ok, d), mask=mask)
        part = part_ptr + (r * P + pid) * (3 + K) * BD + cols
        tl.store(part, tl.sum(acc_w, axis=0))
        tl.store(part + BD, tl.sum(acc_b, axis=0))
        tl.store(part + 2 * BD, tl.sum(acc_kb, axis=0))
        tl.store(part + 3 * BD, tl.sum(acc_k0, axis=0))
        if K > 1:
            tl.store(part + 4 * BD, tl.sum(acc_k1, axis=0))
        if K > 2:
            tl.store(part + 5 * BD, tl.sum(acc_k2, axis=0))
        if K > 3:
            tl.store(part + 6 * BD, tl.sum(acc_k3, axis=0))

    _INTERPRETED = runs_interpreted(_ln_embed_kernel)
else:  # pragma: no cover - depends on the environment
    _INTERPRETED = False


# --------------------------------------------------------------------------------------------------------------------
# launching
# --------------------------------------------------------------------------------------------------------------------
def _padded_width(d: int) -> int:
    return max(16, 1 << max(0, d - 1).bit_length())


def _blocks(d: int) -> tuple[int, int, int]:
    """``(BM, BD, num_warps)``: a ``(BM, BD)`` block of ``TILE`` elements, ``WARPS`` warps."""
    bd = _padded_width(d)
    return max(1, TILE // bd), bd, WARPS


def _query_slots(qpos: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``qrow (B·N,)`` int32: the slot ``b·D + j`` written for row ``b·N + t`` (−1 for rows no query names), and
    ``canon (B·D,)`` int64: for each slot, the slot its row was written to (itself unless ``qpos`` repeats a row)."""
    b, dq = qpos.shape
    rows = (torch.arange(b, device=qpos.device)[:, None] * n + qpos).reshape(-1)
    qrow = torch.full((b * n,), -1, dtype=torch.int32, device=qpos.device)
    qrow.scatter_(0, rows, torch.arange(b * dq, dtype=torch.int32, device=qpos.device))
    return qrow, qrow[rows].long()


class _FusedTrunk(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, qpos, mm_dtype, u_dtype, emb, ln0a_w, ln0a_b, c0_w, c0_b, c0_k, c0_kb, ln0b_w, ln0b_b,
                ln1a_w, ln1a_b):  # fmt: skip
        runs, vocab, d = emb.shape
        b, n = x.shape
        t, q, kk = b * n, qpos.numel(), c0_k.shape[-1]
        bm, bd, warps = _blocks(d)
        xf = x.reshape(-1).contiguous()
        qrow, canon = _query_slots(qpos, n)
        dev = emb.device
        a = torch.empty(runs, t, d, dtype=mm_dtype, device=dev)
        grid = (triton.cdiv(t, bm), runs)
        _ln_embed_kernel[grid](xf, emb, ln0a_w, ln0a_b, a, t, vocab, d, EPS, BM=bm, BD=bd, num_warps=warps)
        with torch.autocast(dev.type, enabled=False):
            lin = torch.baddbmm(c0_b.to(mm_dtype).unsqueeze(1), a, c0_w.to(mm_dtype))  # (R, T, d)
        u = torch.empty(runs, t, d, dtype=u_dtype, device=dev)
        r_canon = torch.empty(runs, q, d, dtype=torch.float32, device=dev)
        _block0_kernel[grid](
            xf, emb, lin, qrow, c0_k, c0_kb, ln0a_w, ln0a_b, ln0b_w, ln0b_b, ln1a_w, ln1a_b, u, r_canon,
            t, n, vocab, d, q, EPS, K=kk, BM=bm, BD=bd, num_warps=warps,
        )  # fmt: skip
        ctx.save_for_backward(xf, qrow, canon, a, lin, emb, ln0a_w, ln0a_b, c0_w, c0_k, c0_kb, ln0b_w, ln0b_b, ln1a_w)
        ctx.shape = (runs, b, n, d)
        return u.view(runs, b, n, d), r_canon.index_select(1, canon)

    @staticmethod
    @once_differentiable
    def backward(ctx, g_u, g_rq):
        xf, qrow, canon, a, lin, emb, ln0a_w, ln0a_b, c0_w, c0_k, c0_kb, ln0b_w, ln0b_b, ln1a_w = ctx.saved_tensors
        runs, b, n, d = ctx.shape
        t, q, kk, vocab = b * n, canon.numel(), c0_k.shape[-1], emb.shape[1]
        bm, bd, warps = _blocks(d)
        dev = emb.device
        g_u = torch.zeros(runs, t, d, device=dev) if g_u is None else g_u.reshape(runs, t, d).contiguous()
        grq = torch.zeros(runs, q, d, dtype=torch.float32, device=dev)
        if g_rq is not None:
            grq.index_add_(1, canon, g_rq.float())
        progs = triton.cdiv(triton.cdiv(t, bm), ROW_BLOCKS)
        grid = (progs, runs)
        gm = torch.empty(runs, t, d, dtype=torch.float32, device=dev)
        glin = torch.empty_like(lin)
        part = torch.empty(runs, progs, 5, bd, dtype=torch.float32, device=dev)
        _block0_grad_kernel[grid](
            xf, emb, lin, qrow, c0_k, c0_kb, ln0a_w, ln0a_b, ln0b_w, ln0b_b, ln1a_w, g_u, grq, gm, glin, part,
            t, n, vocab, d, q, progs, EPS, K=kk, BM=bm, BD=bd, ROW_BLOCKS=ROW_BLOCKS, num_warps=warps,
        )  # fmt: skip
        with torch.autocast(dev.type, enabled=False):
            ga = torch.bmm(glin, c0_w.to(glin.dtype).transpose(1, 2))  # (R, T, d)
            g_c0_w = torch.bmm(a.transpose(1, 2), glin).float()  # (R, d, d)
        part_a = torch.empty(runs, progs, 3 + kk, bd, dtype=torch.float32, device=dev)
        gh = torch.empty(runs, t, d, dtype=torch.float32, device=dev)
        _embed_grad_kernel[grid](
            xf, emb, lin, c0_k, ln0a_w, ln0a_b, gm, ga, gh, part_a,
            t, n, vocab, d, progs, EPS, K=kk, BM=bm, BD=bd, ROW_BLOCKS=ROW_BLOCKS, num_warps=warps,
        )  # fmt: skip
        sums = part.sum(1)[..., :d]  # (R, 5, d): LN1a w, b; LN0b w, b; b0
        sums_a = part_a.sum(1)[..., :d]  # (R, 3 + K, d): LN0a w, b; κ_b; κ_s
        offsets = torch.arange(runs, device=dev)[:, None] * vocab
        g_emb = torch.ops.aten.embedding_dense_backward(
            gh.view(runs * t, d), (xf[None] + offsets).reshape(-1), runs * vocab, -1, False
        ).view(runs, vocab, d)
        return (
            None, None, None, None, g_emb, sums_a[:, 0], sums_a[:, 1], g_c0_w, sums[:, 4],
            sums_a[:, 3:].transpose(1, 2), sums_a[:, 2], sums[:, 2], sums[:, 3], sums[:, 0], sums[:, 1],
        )  # fmt: skip


def fused_trunk_available(t: torch.Tensor, taps: int) -> bool:
    """Whether :func:`fused_trunk` runs the kernels for a model whose parameters are like ``t`` and whose layer-0
    filter has ``taps`` taps."""
    return (
        triton is not None
        and 1 <= taps <= MAX_TAPS
        and kernel_switched_on(t.device, _INTERPRETED, "MQARKIT_FUSED_TRUNK")
        and t.dtype == torch.float32
    )


def _check_range(t: torch.Tensor, hi: int, name: str, what: str) -> None:
    """``0 <= t < hi``, or an error naming ``name``: raised on the CPU; on CUDA ``torch._assert_async`` (no host
    sync; the kernels would otherwise read outside their tables), which fails the next synchronising call."""
    ok = ((t >= 0) & (t < hi)).all()
    if t.is_cuda:
        torch._assert_async(ok, f"{name}: {what} must lie in [0, {hi})")
    elif not bool(ok):
        raise ValueError(f"{name}: {what} must lie in [0, {hi})")


def fused_trunk(
    model, x: torch.Tensor, qpos: torch.Tensor, *, u_dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`trunk_reference`'s ``u (R, B, N, d)`` and ``r (R, B·D, d)`` through the kernels of the module docstring.

    ``model`` a :class:`~mqarkit.gpu.frontier.model.StackedHybrid` (float32 parameters), ``x (B, N)`` int64 token ids in
    ``[0, c)``, ``qpos (B, D)`` integer positions in ``[0, N)`` (validated by the caller). The product's dtype is the
    autocast dtype when autocast is on for the parameters' device, else float32; ``u_dtype`` defaults to it.
    """
    emb = model.emb
    if not fused_trunk_available(emb, model.c0_k.shape[-1]):
        raise ValueError(
            f"fused_trunk: needs triton, float32 CUDA parameters (or the Triton interpreter) and a layer-0 filter of "
            f"at most {MAX_TAPS} taps"
        )
    _check_range(x, emb.shape[1], "x", "token ids")
    _check_range(qpos, x.shape[1], "qpos", "positions")
    dev = emb.device
    autocast = dev.type == "cuda" and torch.is_autocast_enabled("cuda")
    mm_dtype = torch.get_autocast_dtype("cuda") if autocast else torch.float32
    params = [getattr(model, name).contiguous() for name in PARAMS]
    with launch_device(emb):  # Triton launches on the current device: make it the model's (one worker per GPU)
        return _FusedTrunk.apply(
            x.long().contiguous(), qpos.long(), mm_dtype, u_dtype or mm_dtype, emb.contiguous(), *params
        )


__all__ = ["fused_trunk", "fused_trunk_available", "trunk_reference"]
