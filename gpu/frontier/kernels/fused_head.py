"""Linear head + summed cross-entropy, and linear head + argmax, without materialising the logits: Triton kernels
and naive references. (One module over 500 lines: the four kernels share their tile loop, launcher and validation,
``_launch`` and ``_checked``; split apart, those would be copied.)

Symbols: ``R`` stacked runs, ``M`` labelled positions, ``d`` hidden width, ``c`` vocabulary size;
``h (R, M, d)`` hidden states, ``w (R, d, c)`` head weights, ``t (M,)`` int64 targets shared by every run.

The value. With logits ``z[r, m] = h[r, m] @ w[r]  (c,)`` and ``lse[r, m] = log Σ_j exp(z[r, m, j])``,

    L = Σ_{r, m} ( lse[r, m] − z[r, m, t[m]] )                           (float32; float64 for float64 inputs)

which is ``Σ_r F.cross_entropy(z[r], t, reduction="sum")``. The gradients, with ``p = softmax(z) − onehot(t)``
``(R, M, c)`` and the incoming scalar ``g = ∂/∂L``:

    dh[r] = g · p[r] @ w[r]ᵀ      (M, d)
    dw[r] = g · h[r]ᵀ @ p[r]      (d, c)

:func:`reference_linear_cross_entropy` evaluates this naively: ``bmm`` in the inputs' dtype, then a float32 log-softmax
over the whole ``(R, M, c)`` logits, differentiated by autograd (``O(R·M·c)`` memory, ~6 passes over the logits).

:func:`fused_linear_cross_entropy` gives the same value and gradients through three Triton kernels that keep every
logits tile in registers (memory ``O(R·M + R·d·c)`` besides the gradients themselves):

- ``_lse_kernel``, grid ``(R, ⌈M/BM⌉)``: a ``(BM, d)`` block of ``h`` stays in registers while the kernel walks the
  vocabulary in ``(d, BN)`` tiles of ``w[r]``: ``z_tile = h_blk @ w_tile`` (float32 accumulation), online max / sum-exp
  (the flash-attention recurrence ``s ← s·exp(m − m') + Σ exp(z − m')``), so ``lse (R, M)`` float32 comes out in one
  pass. The target logit ``z[r, m, t[m]] = Σ_k h[r, m, k]·w[r, k, t[m]]`` is a gather of ``d`` columns of ``w[r]`` per
  row, done once per row block (float32 products and sum); the kernel writes ``lse − z_t (R, M)`` and torch sums it.
- ``_dh_kernel``, grid ``(R, ⌈M/BM⌉)``: the same walk, recomputing ``p_tile = exp(z_tile − lse) − onehot`` from the
  saved ``lse`` and accumulating ``p_tile @ w_tileᵀ`` into a ``(BM, d)`` float32 block.
- ``_dw_kernel``, grid ``(R, ⌈c/BN⌉)``: a ``(d, BN)`` tile of ``w[r]`` stays in registers while the kernel walks the
  rows in ``(BM, d)`` blocks of ``h[r]``, recomputing ``p_tile`` and accumulating ``h_blkᵀ @ p_tile`` into a
  ``(d, BN)`` float32 tile. Each output element has exactly one writer, so no atomics.

:func:`fused_linear_argmax` (inference only, no autograd) gives ``argmax_j z[r, m, j] (R, M)`` int64 through one more:

- ``_argmax_kernel``, grid ``(R, ⌈M/BM⌉)``: the walk of ``_lse_kernel``, keeping a running float32 max and its index
  per row. Within a tile the first index of the maximum wins; across tiles the index changes only on a strictly
  greater maximum, so ties go to the smallest index, as in ``torch.argmax``. Its reference
  :func:`reference_linear_argmax` takes the argmax of float32 logits (``bmm`` of the inputs cast to float32; float64
  for float64 inputs), not of logits rounded to the inputs' dtype, so that it agrees with the kernel's float32
  accumulation (only rows whose top two logits are within float32 rounding of each other may differ).

Both backward kernels read ``g`` from device memory (no host sync) and apply it once to the float32 accumulator. As in
autograd through ``bmm``, ``p`` is rounded to the inputs' dtype before its matrix product (bf16 under autocast), and
``dh`` / ``dw`` are returned in the dtypes of ``h`` / ``w``. Float32 inputs use full-precision ``tl.dot`` unless
``torch.backends.cuda.matmul.allow_tf32`` is set (then TF32, as ``bmm`` would).

Shapes that are not multiples of the blocks are masked: ``d`` is padded to ``BD`` = the next power of two ≥ 16 (48 →
64) with zeros, rows ``≥ M`` and columns ``≥ c`` are masked (a zero row of ``h`` or a zero column of ``w`` contributes
nothing to the backward products, so only the forward's sum-exp needs the column mask explicitly).

Dispatch: the kernels run for CUDA tensors of dtype float16 / bfloat16 / float32 with ``d ≤ 128``; under the Triton
interpreter (``TRITON_INTERPRET=1`` when this module was imported) they also run on CPU tensors. Everything else --
CPU tensors, float64, no importable ``triton``, the environment variable ``MQARKIT_FUSED_HEAD=0`` (read per call),
empty inputs -- falls back to the reference. Under ``torch.autocast`` all four functions first cast ``h`` and ``w`` to
the autocast dtype, as ``bmm`` would. Targets outside ``[0, c)`` raise ``ValueError`` on the CPU; on CUDA they are
checked with ``torch._assert_async`` (no host sync), which fails the next synchronising call.
"""

from __future__ import annotations

import contextlib

import torch
from torch.autograd.function import once_differentiable

from mqarkit.gpu.device import kernel_switched_on, launch_device, runs_interpreted

try:  # guarded: CI and CPU machines have no triton; importing triton loads neither torch kernels nor sympy
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None
    tl = None

__all__ = [
    "fused_linear_argmax",
    "fused_linear_cross_entropy",
    "reference_linear_argmax",
    "reference_linear_cross_entropy",
]

_KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_MAX_BD = 128  # wider heads fall back to the reference (untuned; register pressure of the (BM, BD) blocks)
_INT32_LIMIT = 2**31  # offsets inside the kernels are int32 per run; larger tensors fall back

# Block configuration per padded width BD: (BM, BN, num_warps, num_stages) for each kernel. Measured on an H100
# (triton 3.6, bf16, R = 12, M = 16384, c = 8192) over BM, BN in {64, 128, 256}, 4 / 8 warps: small 4-warp tiles win
# (the kernels are bound by the exp / select work on the float32 logits tile, not by the d-deep dots), and the dw
# kernel, whose grid is only R·c/BN programs, prefers BM = 128 rows per step for d <= 64. At d = 64: lse 0.82 ms,
# dh 0.92 ms, dw 0.86 ms (next best configs 0.87 / 1.10 / 0.98 ms). The argmax kernel walks like the lse kernel and
# takes its configs (not measured separately).
_CONFIGS: dict[int, dict[str, tuple[int, int, int, int]]] = {
    16: {"lse": (64, 128, 4, 3), "dh": (64, 128, 4, 3), "dw": (128, 128, 4, 3), "argmax": (64, 128, 4, 3)},
    32: {"lse": (64, 128, 4, 3), "dh": (64, 128, 4, 3), "dw": (128, 128, 4, 3), "argmax": (64, 128, 4, 3)},
    64: {"lse": (64, 128, 4, 3), "dh": (64, 128, 4, 3), "dw": (128, 128, 4, 3), "argmax": (64, 128, 4, 3)},
    128: {"lse": (128, 64, 4, 3), "dh": (64, 128, 4, 3), "dw": (64, 128, 4, 3), "argmax": (128, 64, 4, 3)},
}


# --------------------------------------------------------------------------------------------------------------------
# validation and the reference
# --------------------------------------------------------------------------------------------------------------------


def _checked(
    h: torch.Tensor, w: torch.Tensor, targets: torch.Tensor | None, *, with_targets: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate the arguments; return ``h, w`` cast to the autocast dtype when autocast is on for their device.

    ``with_targets=False`` (the argmax functions, which take none): only ``h`` and ``w`` are checked; ``targets`` is
    ignored.
    """
    named = (("h", h), ("w", w), ("targets", targets)) if with_targets else (("h", h), ("w", w))
    for name, x in named:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: needs a torch.Tensor, got {type(x).__name__}")
    if h.dim() != 3:
        raise ValueError(f"h: needs shape (R, M, d) (3-D), got {tuple(h.shape)}")
    r, m, d = h.shape
    if w.dim() != 3 or w.shape[0] != r or w.shape[1] != d:
        raise ValueError(f"w: needs shape (R, d, c) with R={r}, d={d} from h, got {tuple(w.shape)}")
    if w.shape[2] < 1:
        raise ValueError(f"w: needs c >= 1 vocabulary columns, got shape {tuple(w.shape)}")
    if with_targets and (targets.dim() != 1 or targets.shape[0] != m):
        raise ValueError(f"targets: needs shape (M,) with M={m} from h, got {tuple(targets.shape)}")
    if with_targets and targets.dtype != torch.int64:
        raise TypeError(f"targets: needs dtype torch.int64, got {targets.dtype}")
    for name, x in (("h", h), ("w", w)):
        if not x.is_floating_point():
            raise TypeError(f"{name}: needs a floating-point dtype, got {x.dtype}")
    for name, x in named[1:]:
        if x.device != h.device:
            raise ValueError(f"{name}: needs the device of h ({h.device}), got {x.device}")
    if torch.is_autocast_enabled(h.device.type):
        dtype = torch.get_autocast_dtype(h.device.type)
        h, w = h.to(dtype), w.to(dtype)
    if h.dtype != w.dtype:
        raise TypeError(f"w: needs the dtype of h ({h.dtype}) outside autocast, got {w.dtype}")
    return h, w


def _check_target_range(targets: torch.Tensor, c: int) -> None:
    """Targets in ``[0, c)``: a ``ValueError`` off CUDA; an asynchronous device assertion (no host sync) on CUDA."""
    if targets.numel() == 0:
        return
    if targets.is_cuda:
        torch._assert_async(((targets >= 0) & (targets < c)).all(), f"targets: need values in [0, c={c})")
        return
    lo, hi = int(targets.min()), int(targets.max())
    if lo < 0 or hi >= c:
        raise ValueError(f"targets: need values in [0, c={c}), got min {lo}, max {hi}")


def _reference(
    h: torch.Tensor, w: torch.Tensor, targets: torch.Tensor, per_run_sums: torch.Tensor | None = None
) -> torch.Tensor:
    r, m, _ = h.shape
    logits = torch.bmm(h, w)  # (R, M, c) in the inputs' dtype
    acc = torch.promote_types(logits.dtype, torch.float32)  # float32, or float64 for float64 inputs
    logp = torch.log_softmax(logits.to(acc), dim=-1)  # (R, M, c)
    rows = -logp.gather(2, targets.expand(r, m).unsqueeze(2))  # (R, M, 1)
    if per_run_sums is not None:
        _add_per_run(per_run_sums, rows.detach().reshape(r, m))
    return rows.sum()


def _add_per_run(per_run_sums: torch.Tensor, rows: torch.Tensor) -> None:
    """``per_run_sums (R,) += rows (R, M)`` summed over ``M``, in place (no autograd, no host sync)."""
    with torch.no_grad():
        per_run_sums.add_(rows.sum(1).to(per_run_sums.dtype))


def _checked_per_run_sums(per_run_sums: torch.Tensor | None, h: torch.Tensor) -> None:
    if per_run_sums is None:
        return
    if not isinstance(per_run_sums, torch.Tensor):
        raise TypeError(f"per_run_sums: needs a torch.Tensor or None, got {type(per_run_sums).__name__}")
    if per_run_sums.shape != (h.shape[0],) or not per_run_sums.is_floating_point():
        raise ValueError(f"per_run_sums: needs a floating (R,) tensor with R={h.shape[0]}, got {per_run_sums.shape}")
    if per_run_sums.device != h.device:
        raise ValueError(f"per_run_sums: needs the device of h ({h.device}), got {per_run_sums.device}")


def reference_linear_cross_entropy(h: torch.Tensor, w: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``Σ_{r, m} [lse(h[r, m] @ w[r]) − (h[r, m] @ w[r])[targets[m]]]`` naively, differentiable by autograd.

    ``h (R, M, d)``, ``w (R, d, c)`` floating (same dtype, or cast by autocast), ``targets (M,)`` int64 in ``[0, c)``.
    Returns a float32 scalar (float64 for float64 inputs). Materialises the ``(R, M, c)`` logits.
    """
    h, w = _checked(h, w, targets)
    _check_target_range(targets, w.shape[2])
    return _reference(h, w, targets)


def _reference_argmax(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    acc = torch.promote_types(h.dtype, torch.float32)  # float32, or float64 for float64 inputs
    dev = h.device.type
    # autocast would cast the float32 bmm back down: off for it (checked first: not every device type has autocast)
    off = torch.autocast(dev, enabled=False) if torch.is_autocast_enabled(dev) else contextlib.nullcontext()
    with off:
        return torch.bmm(h.to(acc), w.to(acc)).argmax(-1)  # (R, M, c) logits -> (R, M)


def reference_linear_argmax(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``argmax_j (h[r, m] @ w[r])[j]`` naively: ``(R, M)`` int64, the first index among equal maxima.

    ``h (R, M, d)``, ``w (R, d, c)`` floating (same dtype, or cast by autocast). The logits are computed in float32
    (float64 for float64 inputs) from the (cast) inputs, not rounded to their dtype, so that the result agrees with
    the kernel's float32 accumulation. Materialises the ``(R, M, c)`` logits. No autograd.
    """
    with torch.no_grad():
        h, w = _checked(h, w, None, with_targets=False)
        return _reference_argmax(h, w)


# --------------------------------------------------------------------------------------------------------------------
# Triton kernels (defined only when triton imports)
# --------------------------------------------------------------------------------------------------------------------

if triton is not None:
    LOG2E = tl.constexpr(1.4426950408889634)  # log2(e): exponentials in base 2 (exp2 is the hardware's)
    LN2 = tl.constexpr(0.6931471805599453)

    @triton.jit
    def _h_block(h_ptr, rows, feats, M, D, s_hm, s_hd):
        """``(BM, BD)`` block of one run's ``h`` (``h_ptr`` at the run); zero outside ``M × d``."""
        mask = (rows < M)[:, None] & (feats < D)[None, :]
        return tl.load(h_ptr + rows[:, None] * s_hm + feats[None, :] * s_hd, mask=mask, other=0.0)

    @triton.jit
    def _w_tile(w_ptr, feats, cols, D, C, s_wd, s_wc):
        """``(BD, BN)`` tile of one run's ``w`` (``w_ptr`` at the run); zero outside ``d × c``."""
        mask = (feats < D)[:, None] & (cols < C)[None, :]
        return tl.load(w_ptr + feats[:, None] * s_wd + cols[None, :] * s_wc, mask=mask, other=0.0)

    @triton.jit
    def _softmax_minus_onehot(h_blk, w_tile, cols, tgt, lse2, PRECISION: tl.constexpr):
        """``p = softmax(z) − onehot(t)`` on a ``(BM, BN)`` tile, ``z = h_blk @ w_tile``; ``lse2 = lse·log2(e)``."""
        z = tl.dot(h_blk, w_tile, input_precision=PRECISION)  # (BM, BN) float32
        p = tl.exp2(z * LOG2E - lse2[:, None])
        return tl.where(cols[None, :] == tgt[:, None], p - 1.0, p)

    @triton.jit
    def _lse_kernel(
        h_ptr,  # (R, M, d)
        w_ptr,  # (R, d, c)
        t_ptr,  # (M,) int64
        lse_ptr,  # (R, M) float32, contiguous
        loss_ptr,  # (R, M) float32, contiguous: lse − target logit
        M,
        C,
        D,
        s_hr,
        s_hm,
        s_hd,
        s_wr,
        s_wd,
        s_wc,
        BM: tl.constexpr,
        BN: tl.constexpr,
        BD: tl.constexpr,
        PRECISION: tl.constexpr,
    ):
        r = tl.program_id(0).to(tl.int64)
        rows = tl.program_id(1) * BM + tl.arange(0, BM)  # (BM,)
        feats = tl.arange(0, BD)  # (BD,)
        row_ok = rows < M
        feat_ok = feats < D
        h_blk = _h_block(h_ptr + r * s_hr, rows, feats, M, D, s_hm, s_hd)  # (BM, BD)
        w_base = w_ptr + r * s_wr
        # the target logit: gather column t[m] of w[r] for each row, float32 products and sum
        tgt = tl.load(t_ptr + rows, mask=row_ok, other=0)  # (BM,) int64
        tgt_ok = row_ok & (tgt >= 0) & (tgt < C)
        w_tgt = tl.load(
            w_base + feats[None, :] * s_wd + tgt[:, None] * s_wc,
            mask=tgt_ok[:, None] & feat_ok[None, :],
            other=0.0,
        )  # (BM, BD)
        z_tgt = tl.sum(h_blk.to(tl.float32) * w_tgt.to(tl.float32), axis=1)  # (BM,)
        # online log-sum-exp over the vocabulary tiles, in base 2: m2 = max z·log2(e), s = Σ 2^(z·log2(e) − m2)
        m2 = tl.full([BM], float("-inf"), tl.float32)
        s = tl.zeros([BM], tl.float32)
        for n0 in range(0, C, BN):
            cols = n0 + tl.arange(0, BN)  # (BN,)
            w_tile = _w_tile(w_base, feats, cols, D, C, s_wd, s_wc)  # (BD, BN)
            z2 = tl.dot(h_blk, w_tile, input_precision=PRECISION) * LOG2E  # (BM, BN) float32
            z2 = tl.where((cols < C)[None, :], z2, float("-inf"))
            m2_new = tl.maximum(m2, tl.max(z2, axis=1))
            s = s * tl.exp2(m2 - m2_new) + tl.sum(tl.exp2(z2 - m2_new[:, None]), axis=1)
            m2 = m2_new
        lse = (m2 + tl.log2(s)) * LN2  # (BM,) natural log
        tl.store(lse_ptr + r * M + rows, lse, mask=row_ok)
        tl.store(loss_ptr + r * M + rows, lse - z_tgt, mask=row_ok)

    @triton.jit
    def _dh_kernel(
        h_ptr,  # (R, M, d)
        w_ptr,  # (R, d, c)
        t_ptr,  # (M,) int64
        lse_ptr,  # (R, M) float32, contiguous
        g_ptr,  # () float32: the incoming gradient
        dh_ptr,  # (R, M, d) contiguous, dtype of h
        M,
        C,
        D,
        s_hr,
        s_hm,
        s_hd,
        s_wr,
        s_wd,
        s_wc,
        BM: tl.constexpr,
        BN: tl.constexpr,
        BD: tl.constexpr,
        PRECISION: tl.constexpr,
    ):
        r = tl.program_id(0).to(tl.int64)
        rows = tl.program_id(1) * BM + tl.arange(0, BM)
        feats = tl.arange(0, BD)
        row_ok = rows < M
        feat_ok = feats < D
        h_blk = _h_block(h_ptr + r * s_hr, rows, feats, M, D, s_hm, s_hd)  # (BM, BD)
        tgt = tl.load(t_ptr + rows, mask=row_ok, other=0)  # (BM,)
        lse2 = tl.load(lse_ptr + r * M + rows, mask=row_ok, other=0.0) * LOG2E  # (BM,)
        w_base = w_ptr + r * s_wr
        acc = tl.zeros([BM, BD], tl.float32)
        for n0 in range(0, C, BN):
            cols = n0 + tl.arange(0, BN)
            # zero columns past c make p's (finite) values there contribute nothing
            w_tile = _w_tile(w_base, feats, cols, D, C, s_wd, s_wc)  # (BD, BN)
            p = _softmax_minus_onehot(h_blk, w_tile, cols, tgt, lse2, PRECISION)  # (BM, BN)
            acc = tl.dot(p.to(w_tile.dtype), tl.trans(w_tile), acc, input_precision=PRECISION)  # (BM, BD)
        acc = acc * tl.load(g_ptr).to(tl.float32)
        tl.store(
            dh_ptr + r * M * D + rows[:, None] * D + feats[None, :],
            acc.to(dh_ptr.dtype.element_ty),
            mask=row_ok[:, None] & feat_ok[None, :],
        )

    @triton.jit
    def _dw_kernel(
        h_ptr,  # (R, M, d)
        w_ptr,  # (R, d, c)
        t_ptr,  # (M,) int64
        lse_ptr,  # (R, M) float32, contiguous
        g_ptr,  # () float32
        dw_ptr,  # (R, d, c) contiguous, dtype of w
        M,
        C,
        D,
        s_hr,
        s_hm,
        s_hd,
        s_wr,
        s_wd,
        s_wc,
        BM: tl.constexpr,
        BN: tl.constexpr,
        BD: tl.constexpr,
        PRECISION: tl.constexpr,
    ):
        r = tl.program_id(0).to(tl.int64)
        cols = tl.program_id(1) * BN + tl.arange(0, BN)  # (BN,)
        feats = tl.arange(0, BD)
        col_ok = cols < C
        feat_ok = feats < D
        w_tile = _w_tile(w_ptr + r * s_wr, feats, cols, D, C, s_wd, s_wc)  # (BD, BN)
        h_base = h_ptr + r * s_hr
        acc = tl.zeros([BD, BN], tl.float32)
        for m0 in range(0, M, BM):
            rows = m0 + tl.arange(0, BM)
            row_ok = rows < M
            # zero rows past M make p's (finite) values there contribute nothing
            h_blk = _h_block(h_base, rows, feats, M, D, s_hm, s_hd)  # (BM, BD)
            tgt = tl.load(t_ptr + rows, mask=row_ok, other=0)
            lse2 = tl.load(lse_ptr + r * M + rows, mask=row_ok, other=0.0) * LOG2E
            p = _softmax_minus_onehot(h_blk, w_tile, cols, tgt, lse2, PRECISION)  # (BM, BN)
            acc = tl.dot(tl.trans(h_blk), p.to(h_blk.dtype), acc, input_precision=PRECISION)  # (BD, BN)
        acc = acc * tl.load(g_ptr).to(tl.float32)
        tl.store(
            dw_ptr + r * D * C + feats[:, None] * C + cols[None, :],
            acc.to(dw_ptr.dtype.element_ty),
            mask=feat_ok[:, None] & col_ok[None, :],
        )

    @triton.jit
    def _argmax_kernel(
        h_ptr,  # (R, M, d)
        w_ptr,  # (R, d, c)
        out_ptr,  # (R, M) int64, contiguous
        M,
        C,
        D,
        s_hr,
        s_hm,
        s_hd,
        s_wr,
        s_wd,
        s_wc,
        BM: tl.constexpr,
        BN: tl.constexpr,
        BD: tl.constexpr,
        PRECISION: tl.constexpr,
    ):
        r = tl.program_id(0).to(tl.int64)
        rows = tl.program_id(1) * BM + tl.arange(0, BM)  # (BM,)
        feats = tl.arange(0, BD)  # (BD,)
        h_blk = _h_block(h_ptr + r * s_hr, rows, feats, M, D, s_hm, s_hd)  # (BM, BD)
        w_base = w_ptr + r * s_wr
        best = tl.full([BM], float("-inf"), tl.float32)  # running max logit per row
        arg = tl.zeros([BM], tl.int32)  # its column (c < 2^31: larger w falls back)
        for n0 in range(0, C, BN):
            cols = n0 + tl.arange(0, BN)  # (BN,)
            w_tile = _w_tile(w_base, feats, cols, D, C, s_wd, s_wc)  # (BD, BN)
            z = tl.dot(h_blk, w_tile, input_precision=PRECISION)  # (BM, BN) float32
            # columns >= c: -inf, and they come after every valid column of the tile, so they never win a tie
            z = tl.where((cols < C)[None, :], z, float("-inf"))
            z_max = tl.max(z, axis=1)  # (BM,)
            z_arg = tl.min(tl.where(z == z_max[:, None], cols[None, :], C), axis=1)  # (BM,) first index of the max
            better = z_max > best  # strictly: an equal max in a later tile keeps the earlier index
            best = tl.where(better, z_max, best)
            arg = tl.where(better, z_arg, arg)
        tl.store(out_ptr + r * M + rows, arg.to(tl.int64), mask=rows < M)

    _INTERPRETED = runs_interpreted(_lse_kernel)
else:  # pragma: no cover - depends on the environment
    _INTERPRETED = False


# --------------------------------------------------------------------------------------------------------------------
# launchers and the autograd Function
# --------------------------------------------------------------------------------------------------------------------


def _padded_width(d: int) -> int:
    """``BD``: the next power of two >= max(d, 16) (``tl.dot`` needs every block dimension >= 16)."""
    return max(16, 1 << max(0, d - 1).bit_length())


def _precision(dtype: torch.dtype) -> str:
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"  # the default; ignored by tl.dot for 16-bit inputs


def _strides(h: torch.Tensor, w: torch.Tensor) -> tuple[int, ...]:
    return (*h.stride(), *w.stride())


def _launch(kernel, which: str, grid_over: str, h: torch.Tensor, w: torch.Tensor, *tensors: torch.Tensor) -> None:
    """Launch ``kernel(h, w, *tensors, M, c, d, *strides, ...)`` with ``which``'s block configuration.

    ``grid_over``: ``"rows"`` for the grid ``(R, ⌈M/BM⌉)`` (lse, dh, argmax), ``"cols"`` for ``(R, ⌈c/BN⌉)`` (dw).
    """
    r, m, d = h.shape
    c = w.shape[2]
    bd = _padded_width(d)
    bm, bn, warps, stages = _CONFIGS[bd][which]
    grid = (r, triton.cdiv(m, bm) if grid_over == "rows" else triton.cdiv(c, bn))
    kernel[grid](
        h, w, *tensors, m, c, d, *_strides(h, w),
        BM=bm, BN=bn, BD=bd, PRECISION=_precision(h.dtype), num_warps=warps, num_stages=stages,
    )  # fmt: skip


def _forward(h: torch.Tensor, w: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``lse (R, M)`` float32 and ``lse − target logit (R, M)`` float32."""
    lse = torch.empty(h.shape[:2], dtype=torch.float32, device=h.device)
    rows = torch.empty_like(lse)
    _launch(_lse_kernel, "lse", "rows", h, w, targets, lse, rows)
    return lse, rows


def _grad_h(h, w, targets, lse, g) -> torch.Tensor:
    """``dh (R, M, d)`` in the dtype of ``h``."""
    dh = torch.empty(h.shape, dtype=h.dtype, device=h.device)
    _launch(_dh_kernel, "dh", "rows", h, w, targets, lse, g, dh)
    return dh


def _grad_w(h, w, targets, lse, g) -> torch.Tensor:
    """``dw (R, d, c)`` in the dtype of ``w``."""
    dw = torch.empty(w.shape, dtype=w.dtype, device=w.device)
    _launch(_dw_kernel, "dw", "cols", h, w, targets, lse, g, dw)
    return dw


def _argmax(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``argmax_j (h[r, m] @ w[r])[j] (R, M)`` int64."""
    out = torch.empty(h.shape[:2], dtype=torch.int64, device=h.device)
    _launch(_argmax_kernel, "argmax", "rows", h, w, out)
    return out


class _FusedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, h: torch.Tensor, w: torch.Tensor, targets: torch.Tensor, per_run_sums: torch.Tensor | None
    ) -> torch.Tensor:
        with launch_device(h):  # Triton launches on the current device: make it h's (e.g. one worker per GPU)
            lse, rows = _forward(h, w, targets)  # (R, M) float32 each
            if per_run_sums is not None:
                _add_per_run(per_run_sums, rows)
        ctx.save_for_backward(h, w, targets, lse)
        return rows.sum()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        h, w, targets, lse = ctx.saved_tensors
        g = grad.detach().to(torch.float32).reshape(1).contiguous()  # stays on the device: no host sync
        with launch_device(h):
            dh = _grad_h(h, w, targets, lse, g) if ctx.needs_input_grad[0] else None
            dw = _grad_w(h, w, targets, lse, g) if ctx.needs_input_grad[1] else None
        return dh, dw, None, None


def _use_kernels(h: torch.Tensor, w: torch.Tensor) -> bool:
    if triton is None or not kernel_switched_on(h.device, _INTERPRETED, "MQARKIT_FUSED_HEAD"):
        return False
    if h.dtype not in _KERNEL_DTYPES or _padded_width(h.shape[2]) > _MAX_BD:
        return False
    if min(h.shape[0], h.shape[1]) == 0:
        return False
    return max(h.numel(), w.numel(), h.shape[0] * h.shape[1]) < _INT32_LIMIT


def fused_linear_cross_entropy(
    h: torch.Tensor, w: torch.Tensor, targets: torch.Tensor, *, per_run_sums: torch.Tensor | None = None
) -> torch.Tensor:
    """``Σ_{r, m} CE(h[r, m] @ w[r], targets[m])`` without materialising the ``(R, M, c)`` logits.

    ``h (R, M, d)``, ``w (R, d, c)`` floating (same dtype, or cast by autocast), ``targets (M,)`` int64 in ``[0, c)``.
    Returns a float32 scalar (float64 for float64 inputs, via the reference) equal to
    :func:`reference_linear_cross_entropy`, with gradients for ``h`` and ``w`` in their dtypes. Triton kernels on
    CUDA; the reference elsewhere (see the module docstring for the exact dispatch).

    ``per_run_sums``: an optional floating ``(R,)`` tensor on ``h``'s device to which each run's summed loss
    ``Σ_m CE(h[r, m] @ w[r], targets[m])`` is added in place, from the rows the value is summed from: no autograd,
    no host sync, the same buffer every call (so a CUDA graph may record the addition). For monitoring (the harness's
    per-run training loss); the returned value and the gradients are unchanged.
    """
    h, w = _checked(h, w, targets)
    _checked_per_run_sums(per_run_sums, h)
    _check_target_range(targets, w.shape[2])
    if not _use_kernels(h, w):
        return _reference(h, w, targets, per_run_sums)
    return _FusedLinearCrossEntropy.apply(h, w, targets, per_run_sums)


def fused_linear_argmax(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``argmax_j (h[r, m] @ w[r])[j]`` without materialising the ``(R, M, c)`` logits: ``(R, M)`` int64.

    ``h (R, M, d)``, ``w (R, d, c)`` floating (same dtype, or cast by autocast). Float32 logits (float64 for float64
    inputs, via the reference); ties go to the smallest index. Equal to :func:`reference_linear_argmax` except on
    rows whose top two logits are within float32 rounding. Inference only: runs without autograd, whatever the
    inputs' ``requires_grad``. Triton kernel on CUDA; the reference elsewhere (the dispatch of
    :func:`fused_linear_cross_entropy`).
    """
    with torch.no_grad():
        h, w = _checked(h, w, None, with_targets=False)
        if not _use_kernels(h, w):
            return _reference_argmax(h, w)
        with launch_device(h):  # Triton launches on the current device: make it h's
            return _argmax(h, w)
