"""The short convolution of the delta-rule families with its SiLU, per-head l2 norm and per-run scale: Triton kernels
(one forward, one or two backward) beside the plain-torch reference.

Symbols: run ``r``, example ``b``, position ``t``, channel ``c`` of ``x (R, B, N, C)``; taps ``s = 0 … T−1`` of
``w (R, C, T)`` (tap ``s`` = lag ``s``, ``T ≤`` :data:`MAX_TAPS`); head width ``K`` (``C = H·K``, heads ``h``); ``ε``
= :data:`~mqarkit.gpu.frontier.families.heads.L2_EPS`; ``σ`` the logistic function::

    z[r,b,t,c] = Σ_s w[r,c,s] · x[r,b,t−s,c]         (x at t < 0 is 0; no bias)
    y          = SiLU(z) = z·σ(z)
    ŷ[…,h,:]   = s_r · ρ · y[…,h,:],   ρ = (Σ_k y[…,h,k]² + ε)^{−1/2}     (given K; without K, ρ = 1)

with ``s_r`` = ``scale[r]`` (None: 1). This is ``heads.short_conv`` followed by ``heads.l2_normalize`` and the scale,
which eager torch runs as a chain of elementwise kernels with float32 intermediates (over ten per tensor, forward
alone). :func:`short_conv_heads_reference` writes it with ``F.pad`` shifts in float32 (float64 for float64 inputs)
and autograd; :func:`short_conv_heads` runs it as one kernel forward and one or two backward (below), float32
arithmetic inside, one rounding to ``x``'s dtype at the store.

Backward, per position (``g = ∂ŷ``; ``ŷ = s ρ y`` and ``∂ρ/∂y_j = −ρ³ y_j``)::

    dy   = s·ρ·(g − ρ² · y · Σ_k y_k g_k)          (without K: dy = s·g)
    dz   = dy · σ(z) · (1 + z·(1 − σ(z)))          (SiLU′)
    dx[t]   = Σ_s w[s] · dz[t+s]                   (dz at t ≥ N is 0)
    dw[s]   = Σ_t dz[t] · x[t−s] = Σ_t dz[t+s] · x[t]

Kernels. Grid axis 1 takes channel blocks: with ``K`` a block is one head (``BLOCK_C`` = the next power of two ≥
``K``, masked: a 24-wide head in a 32-wide block), so ``Σ_k`` is a row reduction inside the program; without ``K``
blocks of :data:`CHANNEL_BLOCK`. A tile is ``(BLOCK_N, BLOCK_C)``, ``BLOCK_N·BLOCK_C ≈`` :data:`FORWARD_TILE` or
:data:`BACKWARD_TILE` elements.

- forward, grid ``(R·B, channel blocks, ⌈N/BLOCK_N⌉)``: each tile loads ``x`` at its rows shifted by each lag (the
  ``T`` loads overlap and hit the cache), and writes ``ŷ``.
- backward: ``_backward_kernel``, grid ``(R·B, channel blocks)``, walks its sequence in ``BLOCK_N``-row blocks and
  for each lag ``s`` (``tl.static_range``) takes ``dz`` at rows ``t+s``, adds ``w[s]·dz[t+s]`` into ``dx[t]`` and
  ``dz[t+s]·x[t]`` into a ``(BLOCK_N, BLOCK_C)`` float32 accumulator of ``dw[s]``, reduced over rows once at the end
  and written as the program's partial ``(R·B, T, C)``, which torch sums over ``B``: no atomics, so the result does
  not depend on scheduling. The forward saves nothing but ``x, w, scale``; ``z, y, ρ, dy, dz`` are recomputed. Where
  ``dz`` comes from: without heads, and with heads of ``BLOCK_C ≤`` :data:`RECOMPUTE_HEAD_BLOCK`, the same kernel
  recomputes it at rows ``t+s`` from ``x`` and ``g`` (``T`` times the forward's arithmetic, on rows of ``x`` and
  ``g`` it has just read: cache hits). Wider heads first run ``_dz_kernel`` (the forward's grid), which writes ``dz``
  as float32 ``(R·B, N, C)`` (8 bytes an element more traffic), and the walk reads it in blocks of
  :data:`CHANNEL_BLOCK`. Why, measured on an H100 (bf16 ``x``, ``R = 12, B = 64, N = 256``, ``T = 4``, one
  tensor's backward): with ``K = 72`` (``BLOCK_C = 128``) recomputing took 1.93 ms at its best tile against 0.71 ms
  for the two kernels (every lag's recomputation needs the row sums ``Σ y², Σ y·g`` of another row set, reductions
  across warps); without heads the recomputation took 0.44 ms; and over the three tensors of a ``K = 16`` stack
  (``R = 4``, 8 heads) forward and backward of ``q, k, v`` took 0.68 ms recomputing, 0.90 ms with ``dz`` written.
  These timings, and the tiles' below, are the kernel's author's, by ``triton.testing.do_bench`` (a mean over its
  repetitions; the first command's are in ``docs/results/gpu_tests_session14_short_conv_first.log``, the second's
  were not kept). ``benchmarks/short_conv.py`` times both variants with medians and writes its figures: on an H100
  (``docs/results/short_conv.md``, ``R = 12, B = N = 256``, one tensor) writing ``dz`` was faster at ``K = 24``
  (``BLOCK_C = 32``; 5.30 ms against 7.57) and ``K = 72``, and level with recomputing at ``K = 16`` (3.34 against
  3.30), so heads of ``BLOCK_C`` 32 now write it too (:data:`RECOMPUTE_HEAD_BLOCK`).

``x`` may be a view whose last axis has stride 1 and whose ``(R, B, N)`` axes collapse to one row stride (a
``torch.split`` of a wider contiguous tensor along the last axis, as ``ops.fused_projection`` returns): the kernels
read it in place through that row stride; any other layout is made contiguous first. ``ŷ`` and ``dx`` are contiguous
in ``x``'s dtype, ``dw`` in ``w``'s. ``scale`` gets no gradient (it follows from integer knobs); one that requires
grad is refused.

Dispatch: the kernels serve float32 / bfloat16 / float16 CUDA tensors (any device under the Triton interpreter,
``TRITON_INTERPRET=1`` at import) with ``K ≤`` :data:`MAX_HEAD_WIDTH`, when triton imports, the call is not being
traced by ``torch.compile`` (``torch.compiler.is_compiling()``: there the plain-torch form is what inductor fuses)
and ``MQARKIT_FUSED_SHORT_CONV`` is not ``0`` (read per call); everything else (CPU tensors, float64, empty inputs)
takes the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mqarkit.gpu.device import kernel_switched_on, launch_device, runs_interpreted
from mqarkit.gpu.frontier.families.heads import L2_EPS

try:  # guarded: CI and CPU machines have no triton
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None
    tl = None

MAX_TAPS = 4  # the kernels' taps are a constexpr, unrolled; fla's ShortConvolution has 4
# Elements of a (BLOCK_N, BLOCK_C) tile and warps, forward and backward, as the kernel's author chose them (the
# module docstring says from what): ptxas (an offline compile for sm_90a with triton 3.9, T = 4, heads) gave the
# recomputing backward about 30 registers per tile element a thread holds, 2048 over 8 warps spilling; on an H100
# (K = 72 and no heads) the backward was fastest at 512 over 4 warps or close to it, the forward at 2048 over 4
# warps without heads and 1024 over 4 (15% faster than 2048) with heads, which one FORWARD_TILE does not follow yet:
# benchmarks/short_conv.py is to time it.
FORWARD_TILE, FORWARD_WARPS = 2048, 4
BACKWARD_TILE, BACKWARD_WARPS = 512, 4
CHANNEL_BLOCK = 64  # channels per program without heads
# With heads: the backward recomputes dz for BLOCK_C up to this, else reads _dz_kernel's (the rule: writes_dz). On an
# H100 (docs/results/short_conv.md, fifteenth session; R = 12, B = N = 256, bf16) writing dz first took the backward of
# K = 24 (BLOCK_C 32) 5.30 ms against 7.57 recomputing, and of K = 72 14.85 against 25.55; at K = 16 they were level.
RECOMPUTE_HEAD_BLOCK = 16
MAX_HEAD_WIDTH = 512  # the widest head one program holds (a tile of one row in the backward); wider: the reference
_KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _checked(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor | None, head_width: int | None) -> None:
    """A ``ValueError`` naming the parameter and its rule for any input the function does not take."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x: needs a 4-D floating tensor (R, B, N, C), got {shape}")
    r, _, _, c = x.shape
    if not isinstance(w, torch.Tensor) or w.dim() != 3 or tuple(w.shape[:2]) != (r, c) or not w.is_floating_point():
        shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise ValueError(f"w: needs a floating tensor of shape (R, C, T) = ({r}, {c}, T) matching x, got {shape}")
    if not 1 <= w.shape[-1] <= MAX_TAPS:
        raise ValueError(f"w: needs 1 <= T <= {MAX_TAPS} taps (its last axis), got T={w.shape[-1]}")
    if w.device != x.device:
        raise ValueError(f"w: on {w.device}, x on {x.device}: every tensor must be on x's device")
    if head_width is not None and (
        not isinstance(head_width, int) or isinstance(head_width, bool) or head_width < 1 or c % head_width
    ):
        raise ValueError(f"head_width={head_width!r}: needs a positive int that divides C={c} (C = H·K)")
    if scale is not None:
        if not isinstance(scale, torch.Tensor) or tuple(scale.shape) != (r,) or not scale.is_floating_point():
            shape = tuple(scale.shape) if isinstance(scale, torch.Tensor) else type(scale).__name__
            raise ValueError(f"scale: needs a floating tensor of shape (R,) = ({r},), got {shape}")
        if scale.device != x.device:
            raise ValueError(f"scale: on {scale.device}, x on {x.device}: every tensor must be on x's device")
        if scale.requires_grad:
            raise ValueError("scale: gets no gradient (it follows from integer knobs); pass scale.detach()")


def short_conv_heads_reference(
    x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor | None = None, head_width: int | None = None
) -> torch.Tensor:
    """``ŷ (R, B, N, C)`` of the module docstring in plain torch (``F.pad`` shifts; float32, float64 for float64
    inputs), in ``x``'s dtype; differentiable in ``x`` and ``w`` by autograd."""
    _checked(x, w, scale, head_width)
    acc = torch.promote_types(x.dtype, torch.float32)
    xf, wf = x.to(acc), w.to(acc)
    n = x.shape[2]
    z = sum(F.pad(xf, (0, 0, s, 0))[:, :, :n] * wf[:, None, None, :, s] for s in range(w.shape[-1]))
    y = F.silu(z)
    if head_width is not None:
        y = y.unflatten(-1, (-1, head_width))
        y = (y * torch.rsqrt((y * y).sum(-1, keepdim=True) + L2_EPS)).flatten(-2)
    if scale is not None:
        y = y * scale.to(acc)[:, None, None, None]
    return y.to(x.dtype)


if triton is not None:

    @triton.jit
    def _tap(w_ptr, c, c_ok, s, T: tl.constexpr):
        """Tap ``s`` of one run's filter ``w (C, T)`` as a float32 ``(1, BLOCK_C)`` row."""
        return tl.load(w_ptr + c * T + s, mask=c_ok, other=0.0).to(tl.float32)[None, :]

    @triton.jit
    def _rows(ptr, t, c, c_ok, N, stride):
        """Rows ``t`` of an ``(N, ·)`` matrix with row stride ``stride`` as float32 ``(BLOCK_N, BLOCK_C)``; rows
        outside ``[0, N)`` and masked channels read 0."""
        ok = ((t >= 0) & (t < N))[:, None] & c_ok[None, :]
        return tl.load(ptr + t.to(tl.int64)[:, None] * stride + c[None, :], mask=ok, other=0.0).to(tl.float32)

    @triton.jit
    def _conv(x_ptr, w_ptr, t, c, c_ok, N, x_stride, T: tl.constexpr):
        """``z`` at rows ``t``: ``Σ_s w[s] x[t−s]``, float32."""
        z = _rows(x_ptr, t, c, c_ok, N, x_stride) * _tap(w_ptr, c, c_ok, 0, T)
        for s in tl.static_range(1, T):
            z += _rows(x_ptr, t - s, c, c_ok, N, x_stride) * _tap(w_ptr, c, c_ok, s, T)
        return z

    @triton.jit
    def _program(B, C, width, BLOCK_C: tl.constexpr):
        """The program's sequence ``rb`` (run · B + example), its run ``r``, and its channels ``c`` (``width`` of them
        from ``program_id(1) · width``, a ``BLOCK_C`` block) with their mask."""
        rb = tl.program_id(0).to(tl.int64)
        lane = tl.arange(0, BLOCK_C)
        c = tl.program_id(1) * width + lane
        return rb, rb // B, c, (lane < width) & (c < C)

    @triton.jit
    def _forward_kernel(
        x_ptr, w_ptr, s_ptr, y_ptr,  # x (R·B, N, ·) row stride x_stride; w (R, C, T); scale (R,) f32; ŷ (R·B, N, C)
        B, N, C, x_stride, width, eps,
        T: tl.constexpr, HEADS: tl.constexpr, HAS_SCALE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
    ):  # fmt: skip
        rb, r, c, c_ok = _program(B, C, width, BLOCK_C)
        t = tl.program_id(2) * BLOCK_N + tl.arange(0, BLOCK_N)
        z = _conv(x_ptr + rb * N * x_stride, w_ptr + r * C * T, t, c, c_ok, N, x_stride, T)
        y = z * tl.sigmoid(z)
        if HEADS:  # masked channels are 0 and add nothing
            y = y * tl.rsqrt(tl.sum(y * y, 1) + eps)[:, None]
        if HAS_SCALE:
            y = y * tl.load(s_ptr + r)
        ok = (t < N)[:, None] & c_ok[None, :]
        off = (rb * N + t)[:, None] * C + c[None, :]
        tl.store(y_ptr + off, y.to(y_ptr.dtype.element_ty), mask=ok)

    @triton.jit
    def _dz(x_ptr, w_ptr, g_ptr, t, c, c_ok, N, C, x_stride, sc, eps, T: tl.constexpr, HEADS: tl.constexpr):
        """``dz`` at rows ``t`` (0 at rows ≥ N), recomputed from ``x`` and ``g`` (module docstring), float32."""
        z = _conv(x_ptr, w_ptr, t, c, c_ok, N, x_stride, T)
        sig = tl.sigmoid(z)
        y = z * sig
        g = _rows(g_ptr, t, c, c_ok, N, C) * sc
        if HEADS:
            rho = tl.rsqrt(tl.sum(y * y, 1) + eps)[:, None]
            dy = rho * (g - rho * rho * y * tl.sum(y * g, 1)[:, None])
        else:
            dy = g
        return dy * sig * (1.0 + z * (1.0 - sig))

    @triton.jit
    def _dz_kernel(
        x_ptr, w_ptr, s_ptr, g_ptr, dz_ptr,  # g (R·B, N, C); dz (R·B, N, C) f32 out
        B, N, C, x_stride, width, eps,
        T: tl.constexpr, HEADS: tl.constexpr, HAS_SCALE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
    ):  # fmt: skip
        """``dz`` of one tile (the forward's grid), written as float32."""
        rb, r, c, c_ok = _program(B, C, width, BLOCK_C)
        t = tl.program_id(2) * BLOCK_N + tl.arange(0, BLOCK_N)
        sc = tl.load(s_ptr + r) if HAS_SCALE else 1.0
        dz = _dz(x_ptr + rb * N * x_stride, w_ptr + r * C * T, g_ptr + rb * N * C, t, c, c_ok, N, C, x_stride, sc, eps,
                 T, HEADS)  # fmt: skip
        tl.store(dz_ptr + (rb * N + t)[:, None] * C + c[None, :], dz, mask=(t < N)[:, None] & c_ok[None, :])

    @triton.jit
    def _backward_kernel(
        x_ptr, w_ptr, s_ptr, g_ptr, dz_ptr, dx_ptr, dw_ptr,  # g, dz, dx (R·B, N, C); dw partial (R·B, T, C) f32
        B, N, C, x_stride, width, eps,
        T: tl.constexpr, HEADS: tl.constexpr, HAS_SCALE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
        DZ_SAVED: tl.constexpr,  # read dz from dz_ptr (written by _dz_kernel), else recompute it from x and g
    ):  # fmt: skip
        rb, r, c, c_ok = _program(B, C, width, BLOCK_C)
        x_run, g_run, w_run = x_ptr + rb * N * x_stride, g_ptr + rb * N * C, w_ptr + r * C * T
        sc = tl.load(s_ptr + r) if HAS_SCALE else 1.0
        dw0 = tl.zeros((BLOCK_N, BLOCK_C), dtype=tl.float32)  # Σ over the rows walked of dz[t+s]·x[t], lag s
        dw1 = tl.zeros((BLOCK_N, BLOCK_C), dtype=tl.float32)
        dw2 = tl.zeros((BLOCK_N, BLOCK_C), dtype=tl.float32)
        dw3 = tl.zeros((BLOCK_N, BLOCK_C), dtype=tl.float32)
        for t0 in range(0, N, BLOCK_N):
            t = t0 + tl.arange(0, BLOCK_N)
            x0 = _rows(x_run, t, c, c_ok, N, x_stride)
            dx = tl.zeros((BLOCK_N, BLOCK_C), dtype=tl.float32)
            for s in tl.static_range(T):
                if DZ_SAVED:
                    dz = _rows(dz_ptr + rb * N * C, t + s, c, c_ok, N, C)
                else:
                    dz = _dz(x_run, w_run, g_run, t + s, c, c_ok, N, C, x_stride, sc, eps, T, HEADS)
                dx += dz * _tap(w_run, c, c_ok, s, T)
                if s == 0:
                    dw0 += dz * x0
                elif s == 1:
                    dw1 += dz * x0
                elif s == 2:
                    dw2 += dz * x0
                else:
                    dw3 += dz * x0
            ok = (t < N)[:, None] & c_ok[None, :]
            tl.store(dx_ptr + (rb * N + t)[:, None] * C + c[None, :], dx.to(dx_ptr.dtype.element_ty), mask=ok)
        dw_run = dw_ptr + rb * T * C + c
        tl.store(dw_run, tl.sum(dw0, 0), mask=c_ok)
        if T > 1:
            tl.store(dw_run + C, tl.sum(dw1, 0), mask=c_ok)
        if T > 2:
            tl.store(dw_run + 2 * C, tl.sum(dw2, 0), mask=c_ok)
        if T > 3:
            tl.store(dw_run + 3 * C, tl.sum(dw3, 0), mask=c_ok)

    _INTERPRETED = runs_interpreted(_forward_kernel)
else:  # pragma: no cover - depends on the environment
    _INTERPRETED = False


def fused_available(x: torch.Tensor, head_width: int | None = None) -> bool:
    """Whether :func:`short_conv_heads` runs the kernels for ``x`` and ``head_width`` (module docs: dispatch)."""
    return (
        triton is not None
        and kernel_switched_on(x.device, _INTERPRETED, "MQARKIT_FUSED_SHORT_CONV")
        and x.dtype in _KERNEL_DTYPES
        and x.numel() > 0
        and (head_width is None or head_width <= MAX_HEAD_WIDTH)
        and not torch.compiler.is_compiling()
    )


def _row_stride(x: torch.Tensor) -> int | None:
    """The one stride of ``x``'s rows if its last axis has stride 1 and its ``(R, B, N)`` axes collapse into rows (a
    split view of a wider contiguous tensor); else None."""
    if x.shape[-1] > 1 and x.stride(-1) != 1:
        return None
    row, expected = None, None
    for size, stride in zip(reversed(x.shape[:-1]), reversed(x.stride()[:-1])):  # N, then B, then R
        if size == 1:
            continue  # any stride
        if expected is not None and stride != expected:
            return None
        if row is None:
            row = stride
        expected = stride * size
    return x.shape[-1] if row is None else row


def _head_block(head_width: int) -> int:
    """``BLOCK_C`` of a program holding one head: the next power of two ``≥ K`` (2 at least), masked past ``K``."""
    return max(2, triton.next_power_of_2(head_width))


def writes_dz(head_width: int | None) -> bool:
    """Whether the backward for heads of ``head_width`` writes ``dz`` first (``_dz_kernel``, heads whose block is wider
    than :data:`RECOMPUTE_HEAD_BLOCK`) rather than recomputing it in one kernel (module docs: kernels)."""
    return head_width is not None and _head_block(head_width) > RECOMPUTE_HEAD_BLOCK


def _blocks(n: int, head_width: int | None, tile: int) -> tuple[int, int, int]:
    """``(BLOCK_N, BLOCK_C, width)``: the tile (about ``tile`` elements) and the channels one program takes (a head,
    or a channel block)."""
    block_c = _head_block(head_width) if head_width is not None else CHANNEL_BLOCK
    block_n = max(1, min(tile // block_c, triton.next_power_of_2(n)))
    return block_n, block_c, head_width if head_width is not None else block_c


class _ShortConvHeads(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, scale, head_width, x_stride):
        r, bsz, n, c = x.shape
        block_n, block_c, width = _blocks(n, head_width, FORWARD_TILE)
        y = torch.empty((r, bsz, n, c), dtype=x.dtype, device=x.device)
        grid = (r * bsz, triton.cdiv(c, width), triton.cdiv(n, block_n))
        with launch_device(x):
            _forward_kernel[grid](
                x, w, w if scale is None else scale, y, bsz, n, c, x_stride, width, L2_EPS,
                T=w.shape[-1], HEADS=head_width is not None, HAS_SCALE=scale is not None,
                BLOCK_N=block_n, BLOCK_C=block_c, num_warps=FORWARD_WARPS,
            )  # fmt: skip
        ctx.save_for_backward(x, w, scale)
        ctx.head_width, ctx.x_stride, ctx.w_dtype = head_width, x_stride, w.dtype
        return y

    @staticmethod
    def backward(ctx, g):
        x, w, scale = ctx.saved_tensors
        r, bsz, n, c = x.shape
        taps = w.shape[-1]
        heads = ctx.head_width is not None
        g = g.contiguous()
        dx = torch.empty((r, bsz, n, c), dtype=x.dtype, device=x.device)
        dw = torch.empty((r, bsz, taps, c), dtype=torch.float32, device=x.device)  # every entry written
        s_ptr = w if scale is None else scale
        args = (bsz, n, c, ctx.x_stride)
        flags = {"T": taps, "HAS_SCALE": scale is not None}
        with launch_device(x):
            saved = writes_dz(ctx.head_width)
            dz = g  # a placeholder pointer where the backward recomputes dz
            if saved:
                dz = torch.empty((r, bsz, n, c), dtype=torch.float32, device=x.device)
                block_n, block_c, width = _blocks(n, ctx.head_width, FORWARD_TILE)
                _dz_kernel[(r * bsz, triton.cdiv(c, width), triton.cdiv(n, block_n))](
                    x, w, s_ptr, g, dz, *args, width, L2_EPS, **flags, HEADS=True,
                    BLOCK_N=block_n, BLOCK_C=block_c, num_warps=FORWARD_WARPS,
                )  # fmt: skip
            block_n, block_c, width = _blocks(n, None if saved else ctx.head_width, BACKWARD_TILE)
            _backward_kernel[(r * bsz, triton.cdiv(c, width))](
                x, w, s_ptr, g, dz, dx, dw, *args, width, L2_EPS, **flags, HEADS=heads and not saved,
                BLOCK_N=block_n, BLOCK_C=block_c, DZ_SAVED=saved, num_warps=BACKWARD_WARPS,
            )  # fmt: skip
        return dx, dw.sum(1).transpose(1, 2).to(ctx.w_dtype), None, None, None


def short_conv_heads(
    x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor | None = None, head_width: int | None = None
) -> torch.Tensor:
    """``ŷ (R, B, N, C)`` of the module docstring, in ``x``'s dtype: ``x (R, B, N, C)`` (a split view is read in
    place), ``w (R, C, T)`` with ``T ≤ 4`` taps, ``scale (R,)`` or None (1; no gradient), ``head_width`` the ``K`` of
    the per-head l2 norm (``C = H·K``) or None (no norm). Gradients for ``x`` and ``w`` in their dtypes. The kernels
    where they serve (:func:`fused_available`), else :func:`short_conv_heads_reference`."""
    _checked(x, w, scale, head_width)
    if not fused_available(x, head_width):
        return short_conv_heads_reference(x, w, scale, head_width)
    x_stride = _row_stride(x)
    if x_stride is None:
        x = x.contiguous()
        x_stride = x.shape[-1]
    scale = None if scale is None else scale.to(torch.float32).contiguous()
    return _ShortConvHeads.apply(x, w.contiguous(), scale, head_width, x_stride)
