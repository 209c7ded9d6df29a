"""Mamba-1's selective scan as two Triton kernels that never form the ``(N, d_i, n)`` states in memory.

Symbols (per run and example; the runs of a stack and the batch fold into one axis ``RB``)::

    x_t, Δ_t  (d_i)      the scan's input and step after the short conv and softplus
    A         (d_i, n)   the diagonal state matrix (A < 0), per run
    B_t, C_t  (n)        input-dependent input and output maps
    h_t = exp(Δ_t A) ⊙ h_{t−1} + (Δ_t x_t) B_tᵀ,   h_{−1} = 0        (d_i × n)
    y_t = h_t C_t                                                     (d_i)

:func:`mqarkit.gpu.frontier.families.mamba.selective_scan` (plain torch, chunked) is the reference; so is
:func:`log_depth_scan` here, the same scan in the kernels' association (pairs combined over doubling distances, plain
torch), whose float32 rounding is the kernels' kind: a log-depth scan forms products of decays and so rounds more than
the chunked scan's short loops (on the CPU at ``N = 1024``, 1.6e-6 of ``y``'s scale from float64 against 3.6e-7:
``benchmarks/scan_rounding.py``). Both form every state, ``R·B·N·d_i·n`` float32 numbers (about 10 GB for a stack of 12
runs at ``d = 64``, ``n = 24``, batch 256, ``N = 256``). Here one program takes one sequence and ``BLOCK_D`` channels
with the whole sequence as a ``(BLOCK_N, BLOCK_D)`` tile, and loops over the ``n`` state indices: for each, the
recurrence is a first-order linear scan over positions, ``(a, b) ∘ (a', b') = (a a', b a' + b')``
(``tl.associative_scan``), so a state column lives in registers only. Forward: ``y += h[:, :, s] C[:, s]``. Backward,
per state index ``s`` (``dh_t`` the gradient reaching ``h_t``)::

    dh_t       = dy_t C_t[s] + exp(Δ_{t+1} A) ⊙ dh_{t+1}                 (the same scan, in reverse)
    ∂C_t[s]    = Σ_i h_t[i] dy_t[i]           ∂B_t[s] = Σ_i dh_t[i] Δ_t[i] x_t[i]
    ∂(Δx)_t   += dh_t B_t[s]                  g_t = dh_t ⊙ h_{t−1} ⊙ exp(Δ_t A[:, s]) = dh_t ⊙ (h_t − (Δx)_t B_t[s])
    ∂Δ_t      += g_t A[:, s]                  ∂A[:, s] = Σ_t g_t Δ_t
    then ∂x = ∂(Δx) Δ, ∂Δ += ∂(Δx) x

The last form of ``g_t`` is the recurrence itself (``exp(Δ_t A) h_{t−1} = h_t − (Δx)_t B_t``), so the backward takes
two scans per state index, not three (a third would scan the inputs shifted down one position for ``h_{t−1}``); the
subtraction's rounding is ``ε |dh_t (Δx)_t B_t|``, ``ε |Δ_t A|`` of the term ``∂(Δx)_t x_t`` it sits beside in ``∂Δ``.
The sums over channels (``∂B, ∂C``) are written per channel block and added by torch afterwards (``2/BLOCK_D`` of
one state tensor's size, transient), and ``∂A`` per example and summed over the batch by torch: no atomics, so the
result does not depend on scheduling (the harness's deterministic mode keeps the kernels).

A stack whose runs differ in ``n`` pads every run to the largest (zero ``B`` and ``C`` beyond a run's own, from the
family's masked projections): the kernels read each run's count (``states``) and loop over its own state indices
only, so a run of ``n = 8`` in a stack padded to 24 does a third of the scan's state updates (what that saves in
time, ``benchmarks/selective_scan.py`` measures), and the padding's ``∂A, ∂B, ∂C`` are left at 0 (what they are:
zero ``B`` and ``C`` keep those states at 0).

Dispatch (:func:`fused_scan_available`): float32 CUDA tensors (any device under the Triton interpreter,
``TRITON_INTERPRET=1`` at import; the wrapper lays them out contiguously), ``N ≤`` :data:`MAX_LEN`, triton importable
and ``MQARKIT_FUSED_SCAN`` not ``0`` (read per call); the Mamba family otherwise runs the torch scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mqarkit.gpu.device import kernel_switched_on, runs_interpreted

try:  # guarded: CI and CPU machines have no triton
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None
    tl = None

# Elements of one (BLOCK_N, BLOCK_D) tile: BLOCK_D = TILE / BLOCK_N channels per program (1 to 32). The backward keeps
# seven tiles live across its loop and about five more inside it: 2048-element tiles are about 100 registers a thread
# over 8 warps (8 elements of each tile), about 200 over 4 warps (16 elements), near the 255 a thread may hold (a count
# of tiles, not of ptxas's registers; the timings cited at BACKWARD chose the launch).
TILE = 2048
MAX_LEN = TILE  # the longest sequence one tile holds (one channel per program)
WARPS = (1, 2, 4, 8, 16)  # what a program's warp count may be


@dataclass(frozen=True)
class Launch:
    """How a kernel runs: ``tile`` elements per program's ``(BLOCK_N, BLOCK_D)`` tile (a power of two ≥ 16: the
    channels ``BLOCK_D`` are what fills it beside the sequence, :func:`block_sizes`) over ``warps`` warps. The
    backward's default is :data:`BACKWARD`; others serve ``benchmarks/selective_scan.py --backward-launches``, which
    times them (the default was chosen so, by the timings cited at it)."""

    tile: int
    warps: int

    def __post_init__(self) -> None:
        if self.tile < 16 or self.tile & (self.tile - 1):
            raise ValueError(f"tile={self.tile}: must be a power of two >= 16")
        if self.warps not in WARPS:
            raise ValueError(f"warps={self.warps}: must be one of {WARPS}")

    def __str__(self) -> str:
        return f"{self.tile}x{self.warps}"


FORWARD = Launch(TILE, 4)  # Triton's default warp count
# The backward's launch, chosen by timing (docs/results/selective_scan.md, H100, fifteenth session): 2048x4 ran the
# skipping path's forward+backward 1.29-1.60x faster than 2048x8 at all nine of the benchmark's shapes (N 64-256,
# d 64-256), and was the fastest of the six launches tried at eight (1024x4 at N = 64, d = 64: 0.87 ms against 0.94).
BACKWARD = Launch(TILE, 4)


def block_sizes(n: int, tile: int = TILE) -> tuple[int, int]:
    """``(BLOCK_N, BLOCK_D)`` for sequences of ``n`` positions: the next power of two ≥ ``n`` (at least 16), and the
    channels that fill a tile of ``tile`` elements (1 to 32)."""
    block_n = max(16, 1 << (n - 1).bit_length())
    return block_n, max(1, min(32, tile // block_n))


if triton is not None:

    @triton.jit
    def _first_order(a1, b1, a2, b2):
        """``h ↦ a h + b`` after ``h ↦ a1 h + b1``: ``(a1 a2, b1 a2 + b2)``."""
        return a1 * a2, b1 * a2 + b2

    @triton.jit
    def _tile(N, D, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
        """This program's sequence ``rb`` and channel block ``blk``: positions ``t``, channels ``d``, their masks
        ``tm, dm, m`` and the offsets ``rows`` of its ``(BLOCK_N, BLOCK_D)`` tile in an ``(RB, N, D)`` tensor."""
        rb, blk = tl.program_id(0).to(tl.int64), tl.program_id(1).to(tl.int64)  # offsets may pass 2^31
        t = tl.arange(0, BLOCK_N)
        d = blk * BLOCK_D + tl.arange(0, BLOCK_D)
        tm, dm = t < N, d < D
        return rb, blk, t, d, tm, dm, tm[:, None] & dm[None, :], rb * N * D + t[:, None] * D + d[None, :]

    @triton.jit
    def _scan_forward(
        x_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, ns_ptr, y_ptr, N, D, NS, BATCH,
        BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    ):  # fmt: skip
        rb, blk, t, d, tm, dm, m, rows = _tile(N, D, BLOCK_N, BLOCK_D)
        run = rb // BATCH
        dt = tl.load(dt_ptr + rows, mask=m, other=0.0)
        dtx = dt * tl.load(x_ptr + rows, mask=m, other=0.0)
        y = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
        for s in range(tl.minimum(tl.load(ns_ptr + run), NS)):  # the run's own state indices (the rest: padding)
            a = tl.load(a_ptr + (run * NS + s) * D + d, mask=dm, other=0.0)
            bs = tl.load(b_ptr + (rb * NS + s) * N + t, mask=tm, other=0.0)
            cs = tl.load(c_ptr + (rb * NS + s) * N + t, mask=tm, other=0.0)
            _, h = tl.associative_scan((tl.exp(dt * a[None, :]), dtx * bs[:, None]), 0, _first_order)
            y += h * cs[:, None]
        tl.store(y_ptr + rows, y, mask=m)

    @triton.jit
    def _scan_backward(
        x_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, ns_ptr, dy_ptr, dx_ptr, ddt_ptr, da_ptr, db_ptr, dc_ptr, N, D, NS, BATCH,
        RB, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    ):  # fmt: skip
        rb, blk, t, d, tm, dm, m, rows = _tile(N, D, BLOCK_N, BLOCK_D)
        run = rb // BATCH
        next_m = (t + 1 < N)[:, None] & dm[None, :]  # position t + 1 exists
        x = tl.load(x_ptr + rows, mask=m, other=0.0)
        dt = tl.load(dt_ptr + rows, mask=m, other=0.0)
        dy = tl.load(dy_ptr + rows, mask=m, other=0.0)
        dt_next = tl.load(dt_ptr + rows + D, mask=next_m, other=0.0)
        dtx = dt * x
        d_dtx = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
        d_dt = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
        for s in range(tl.minimum(tl.load(ns_ptr + run), NS)):  # padded state indices: their ∂A, ∂B, ∂C stay 0
            a = tl.load(a_ptr + (run * NS + s) * D + d, mask=dm, other=0.0)
            col = (rb * NS + s) * N + t
            bs = tl.load(b_ptr + col, mask=tm, other=0.0)
            cs = tl.load(c_ptr + col, mask=tm, other=0.0)
            inp = dtx * bs[:, None]
            _, h = tl.associative_scan((tl.exp(dt * a[None, :]), inp), 0, _first_order)
            _, dh = tl.associative_scan((tl.exp(dt_next * a[None, :]), dy * cs[:, None]), 0, _first_order, reverse=True)
            part = (blk * RB + rb) * NS * N + s * N + t  # this channel block's share of ∂B, ∂C
            tl.store(dc_ptr + part, tl.sum(h * dy, axis=1), mask=tm)
            tl.store(db_ptr + part, tl.sum(dh * dtx, axis=1), mask=tm)
            d_dtx += dh * bs[:, None]
            g = dh * (h - inp)  # dh_t ⊙ exp(Δ_t A) h_{t−1}
            d_dt += g * a[None, :]
            tl.store(da_ptr + (rb * NS + s) * D + d, tl.sum(g * dt, axis=0), mask=dm)
        tl.store(dx_ptr + rows, d_dtx * dt, mask=m)
        tl.store(ddt_ptr + rows, d_dtx * x + d_dt, mask=m)

    _INTERPRETED = runs_interpreted(_scan_forward)
else:  # pragma: no cover - depends on the environment
    _INTERPRETED = False


def fused_scan_available(device: torch.device, dtype: torch.dtype, seq_len: int) -> bool:
    """Whether :func:`fused_selective_scan` serves inputs of ``dtype`` on ``device`` over ``seq_len`` positions
    (module docs: dispatch)."""
    return (
        triton is not None
        and kernel_switched_on(device, _INTERPRETED, "MQARKIT_FUSED_SCAN")
        and dtype == torch.float32
        and seq_len <= MAX_LEN
    )


class _SelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dt, a, b, c, states, backward_launch):
        r, bsz, n, di = x.shape
        ns = a.shape[-1]
        x, dt = x.reshape(r * bsz, n, di).contiguous(), dt.reshape(r * bsz, n, di).contiguous()
        a_t = a.transpose(1, 2).contiguous()  # (R, n, d_i): one state index's channels in a row
        b_t = b.reshape(r * bsz, n, ns).transpose(1, 2).contiguous()  # (RB, n, N): one state index's positions
        c_t = c.reshape(r * bsz, n, ns).transpose(1, 2).contiguous()
        y = torch.empty_like(x)
        block_n, block_d = block_sizes(n, FORWARD.tile)
        grid = (r * bsz, triton.cdiv(di, block_d))
        _scan_forward[grid](
            x, dt, a_t, b_t, c_t, states, y, n, di, ns, bsz, BLOCK_N=block_n, BLOCK_D=block_d, num_warps=FORWARD.warps
        )
        ctx.save_for_backward(x, dt, a_t, b_t, c_t, states)
        ctx.shape, ctx.launch = (r, bsz, n, di, ns), backward_launch
        return y.view(r, bsz, n, di)

    @staticmethod
    def backward(ctx, dy):
        x, dt, a_t, b_t, c_t, states = ctx.saved_tensors
        r, bsz, n, di, ns = ctx.shape
        block_n, block_d = block_sizes(n, ctx.launch.tile)
        blocks = triton.cdiv(di, block_d)
        dy = dy.reshape(r * bsz, n, di).contiguous()
        dx, ddt = torch.empty_like(x), torch.empty_like(x)
        da = torch.zeros(r * bsz, ns, di, device=x.device, dtype=x.dtype)  # zeros: a run's padded states stay so
        db = torch.zeros(blocks, r * bsz, ns, n, device=x.device, dtype=x.dtype)
        dc = torch.zeros_like(db)
        _scan_backward[(r * bsz, blocks)](
            x,
            dt,
            a_t,
            b_t,
            c_t,
            states,
            dy,
            dx,
            ddt,
            da,
            db,
            dc,
            n,
            di,
            ns,
            bsz,
            r * bsz,
            BLOCK_N=block_n,
            BLOCK_D=block_d,
            num_warps=ctx.launch.warps,
        )
        shape = (r, bsz, n, di)
        d_a = da.view(r, bsz, ns, di).sum(1).transpose(1, 2)
        d_b = db.sum(0).transpose(1, 2).reshape(r, bsz, n, ns)
        d_c = dc.sum(0).transpose(1, 2).reshape(r, bsz, n, ns)
        return dx.view(shape), ddt.view(shape), d_a, d_b, d_c, None, None


def log_depth_scan(
    x: torch.Tensor, dt: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor
) -> torch.Tensor:
    """``y (R, B, N, d_i)`` of the scan (module docs) from ``x, dt (R, B, N, d_i)``, ``a (R, d_i, n)``, ``b, c
    (R, B, N, n)`` by a Hillis–Steele scan in plain torch: after the round of distance ``2^k`` each position holds the
    map ``h ↦ α h + β`` of its last ``2^{k+1}`` steps, combined as ``(α, β) ∘ (α', β') = (α α', β α' + β')``. The
    kernels' naive form: the same combination, not the same tree (``tl.associative_scan`` picks its own), so their
    float32 roundings are of one kind, not equal. Forms ``R·B·N·d_i·n`` numbers per round."""
    alpha = torch.exp(dt[..., None] * a[:, None, None])  # (R, B, N, d_i, n)
    beta = (dt * x)[..., None] * b[..., None, :]
    n, step = x.shape[2], 1
    while step < n:  # the map of the `step` positions before: identity (1, 0) where there are none
        alpha_before = torch.cat([torch.ones_like(alpha[:, :, :step]), alpha[:, :, :-step]], dim=2)
        beta_before = torch.cat([torch.zeros_like(beta[:, :, :step]), beta[:, :, :-step]], dim=2)
        alpha, beta = alpha_before * alpha, beta_before * alpha + beta
        step *= 2
    return torch.einsum("rbtin,rbtn->rbti", beta, c)


def fused_selective_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    states: torch.Tensor | None = None,
    backward_launch: Launch = BACKWARD,
) -> torch.Tensor:
    """``y (R, B, N, d_i)`` of the scan (module docs) from ``x, dt (R, B, N, d_i)``, ``a (R, d_i, n)``, ``b, c
    (R, B, N, n)``, float32; differentiable in the first five. ``states (R,)`` (integers, on ``x``'s device; default
    ``n`` for every run): the state indices each run has, the rest padding of a stack whose runs differ in ``n``
    (zero ``B`` and ``C`` there, so they add nothing): the kernels skip them, and their ``∂A, ∂B, ∂C`` are 0 (beyond
    ``n``, ``n`` is taken). ``backward_launch``: how the backward kernel runs (:class:`Launch`; another tile changes
    how the sums over channels are split, so the gradients' float32 rounding, not what they are). Callers check
    :func:`fused_scan_available` first."""
    states = checked_states(x, dt, a, b, c, states)
    if x.shape[2] > MAX_LEN:
        raise ValueError(f"N={x.shape[2]}: the fused scan holds at most MAX_LEN={MAX_LEN} positions")
    if not isinstance(backward_launch, Launch):
        raise ValueError(f"backward_launch={backward_launch!r}: must be a Launch")
    return _SelectiveScan.apply(x, dt, a, b, c, states, backward_launch)


def checked_states(
    x: torch.Tensor, dt: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, states: torch.Tensor | None
) -> torch.Tensor:
    """The scan kernels' shared input rules (``x, dt (R, B, N, d_i)``, ``a (R, d_i, n)``, ``b, c (R, B, N, n)``;
    ``states`` an ``(R,)`` integer tensor on ``x``'s device, default ``n`` for every run), each broken one a
    ``ValueError`` naming it; returns ``states`` as the kernels read it (int32, contiguous)."""
    r, bsz, n, di = x.shape
    if dt.shape != x.shape or a.shape[:2] != (r, di) or b.shape != (r, bsz, n, a.shape[-1]) or c.shape != b.shape:
        raise ValueError(
            f"x {tuple(x.shape)}, dt {tuple(dt.shape)}, a {tuple(a.shape)}, b {tuple(b.shape)}, c {tuple(c.shape)}: "
            "need x, dt (R, B, N, d_i), a (R, d_i, n), b, c (R, B, N, n)"
        )
    if states is None:
        return torch.full((r,), a.shape[-1], dtype=torch.int32, device=x.device)
    if states.shape != (r,) or states.is_floating_point() or states.is_complex() or states.device != x.device:
        raise ValueError(
            f"states {tuple(states.shape)} {states.dtype} on {states.device}: needs an (R,) = ({r},) integer tensor "
            f"on {x.device}"
        )
    return states.to(torch.int32).contiguous()
