"""Mamba-1's selective scan as two Triton kernels that step through the positions one at a time (a trial beside
``kernels/selective_scan.py``; not the family's default until timed).

Symbols as in :mod:`mqarkit.gpu.frontier.kernels.selective_scan` (per run and example; runs and batch fold into
``RB``)::

    x_t, Δ_t  (d_i)      the scan's input and step           A  (d_i, n)  diagonal, A < 0, per run
    B_t, C_t  (n)        input-dependent maps
    h_t = exp(Δ_t A) ⊙ h_{t−1} + (Δ_t x_t) B_tᵀ,   h_{−1} = 0        y_t = h_t C_t

The log-depth kernels take one state index at a time and scan the whole sequence as a tile, so each state update
costs a tree of combinations across threads. Here one program holds a ``(BLOCK_D, BLOCK_S)`` block of the state
(``BLOCK_D`` channels × ``BLOCK_S`` state indices) in registers and applies the recurrence once per position: one
``exp`` (its own, ``_accurate_exp``: about a dozen multiply-adds, within twice torch's error) and two multiply-adds per
state entry and position, no combination across threads but the sum over the block's state indices for its share of
``y_t``. The loop over positions is sequential, so the GPU's parallelism comes from the
programs: ``RB · ⌈d_i / BLOCK_D⌉ · ⌈n / BLOCK_S⌉`` of them. With more than one block of state indices (``BLOCK_S < n``)
each writes its share of ``y`` (and in the backward of ``∂x, ∂Δ``) and torch adds the shares; a block that lies wholly
beyond its run's own state indices returns at once, so a run of ``d_state`` 8 in a stack padded to 24 costs a third of
the padded work, as the log-depth kernels' skipping does (to the block: a partly used block computes in full).

Backward, per program (``dh_t`` the gradient reaching ``h_t``; ``carry`` = ``exp(Δ_{t+1} A) ⊙ dh_{t+1}``)::

    1. a forward pass that stores the state entering each chunk of CHUNK positions (``checkpoints``)
    2. chunks in reverse: from the chunk's entering state, the chunk's states h_t into a per-program buffer; then its
       positions in reverse:
         dh_t      = dy_t C_tᵀ + carry
         ∂C_t[s]   = Σ_i h_t[i, s] dy_t[i]          ∂B_t[s] = Σ_i dh_t[i, s] (Δx)_t[i]    (per channel block)
         ∂(Δx)_t   = Σ_s dh_t[:, s] B_t[s]
         g_t       = dh_t ⊙ exp(Δ_t A) ⊙ h_{t−1} = dh_t ⊙ (h_t − (Δx)_t B_tᵀ)
         ∂Δ_t      = ∂(Δx)_t x_t + Σ_s g_t[:, s] A[:, s]      ∂x_t = ∂(Δx)_t Δ_t      ∂A += g_t Δ_t
         carry     = exp(Δ_t A) ⊙ dh_t

``g_t``'s last form is the one ``kernels/selective_scan.py`` uses (its rounding is discussed there). The buffers are
one ``(BLOCK_D, BLOCK_S)`` block per program times ``NCHUNK`` (checkpoints) and ``CHUNK`` (a chunk's states), allocated
by the backward and freed after it; CHUNK near ``√N`` keeps their sum smallest. ``∂B, ∂C`` are written per channel
block, ``∂x, ∂Δ`` per state block and ``∂A`` per example, summed by torch: no atomics, so the result does not depend on
scheduling.

A run whose ``d_state`` is below the stack's padded ``n`` (``states``) has zero ``A, B, C`` beyond its own (the masked
loads make them so whatever the inputs hold there): those entries of the state stay 0 and their ``∂A, ∂B, ∂C`` are
0, as with the log-depth kernels.

Naive references: :func:`mqarkit.gpu.frontier.families.mamba.selective_scan` (the chunked torch scan; with ``chunk =
N`` a plain loop over the positions, whose rounding the kernels' is held to) and
:func:`~mqarkit.gpu.frontier.kernels.selective_scan.log_depth_scan`. Dispatch: :func:`sequential_scan_available`
(float32, on CUDA or under Triton's interpreter; any ``n``, in blocks); the Mamba family takes these kernels only when
``MQARKIT_SCAN=sequential`` (read per call).
"""

from __future__ import annotations

import math
import os

import torch

from mqarkit.gpu.device import kernel_switched_on, runs_interpreted
from mqarkit.gpu.frontier.kernels.selective_scan import Launch, checked_states

try:  # guarded: CI and CPU machines have no triton
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None
    tl = None

# How both kernels run: ``tile`` entries in one program's (BLOCK_D, BLOCK_S) state block, over ``warps`` warps, and
# STATE_BLOCK state indices a block (BLOCK_S); 8 state indices a block is the granularity of [B] Fig. 2's d_state values
# (8, 16, 24), so no run steps padding. The launch by the scan's channels d_i, chosen by timing
# (benchmarks/selective_scan.py --sequential-launches on a 12-run stack at N = 64, 128, 256; seventeenth session,
# docs/results/selective_scan_session17_{h100_tl_exp,h200}.md): from WIDE_CHANNELS channels on, blocks of 512 entries
# over 2 warps were the fastest launch tried at every N on an H100 and on an H200 (1.04–1.24× the 256-entry blocks);
# below, neither was faster everywhere, and 256 entries, the first default, stay.
NARROW_LAUNCH = Launch(256, 2)
WIDE_LAUNCH = Launch(512, 2)
WIDE_CHANNELS = 256
STATE_BLOCK = 8
MAX_STATE_BLOCK = 1024  # the most state indices one program's block holds (one channel then)
MAX_CHANNELS = 128  # the most channels one program's block holds
SWITCH = "MQARKIT_SCAN"  # "sequential": the Mamba family uses these kernels where they serve


def default_launch(d_inner: int) -> Launch:
    """The kernels' launch for a scan of ``d_inner`` channels (``d_i``): :data:`WIDE_LAUNCH` from
    :data:`WIDE_CHANNELS` on, else :data:`NARROW_LAUNCH`."""
    return WIDE_LAUNCH if d_inner >= WIDE_CHANNELS else NARROW_LAUNCH


def block_shape(n_state: int, tile: int, state_block: int = STATE_BLOCK) -> tuple[int, int]:
    """``(BLOCK_D, BLOCK_S)`` for ``n_state`` state indices: ``state_block`` indices a block (a power of two from 2 to
    :data:`MAX_STATE_BLOCK`), or the next power of two ≥ ``n_state`` where that is fewer (at least 2); and the channels
    that fill a block of ``tile`` entries (1 to :data:`MAX_CHANNELS`)."""
    if not 2 <= state_block <= MAX_STATE_BLOCK or state_block & (state_block - 1):
        raise ValueError(f"state_block={state_block}: must be a power of two from 2 to {MAX_STATE_BLOCK}")
    block_s = min(state_block, max(2, 1 << (n_state - 1).bit_length()))
    return max(1, min(MAX_CHANNELS, tile // block_s)), block_s


def chunk_length(seq_len: int) -> int:
    """Positions per backward chunk: ``⌈√N⌉`` (so checkpoints and a chunk's states, ``N / CHUNK`` and ``CHUNK`` blocks
    per program, are both about ``√N``)."""
    return max(1, math.isqrt(seq_len - 1) + 1) if seq_len > 1 else 1


if triton is not None:

    @triton.jit
    def _accurate_exp(u):
        """``exp(u)`` in float32 to about an ulp, for the decays ``u = Δ A ≤ 0``. Not ``tl.exp``: on the GPU that
        is the approximate ``ex2`` after a rounded product with ``log2 e`` (under the interpreter, numpy's float32
        ``exp``), up to about 3 ulp and biased, and a decay's error repeats at every position of a sequential scan: at
        N = 1024 it made ``y``'s error 3.5 times a float32 torch loop's (seventeenth session; the tests' N = 1024 case).

        Cody–Waite: ``u = k ln2 + r`` with ``k`` an integer and ``|r| ≤ ln2 / 2``, ln 2 split into 0.693145751953125
        (16 significant bits, so ``k`` times it is exact for ``|k| < 2^8``) and the rest; ``e^r`` by its Taylor
        polynomial to ``r^7`` (the next term is below ``2^-26``); times ``2^(k−1)``, written into the exponent bits,
        and 2 (so that ``k`` = 128 stays finite). ``u`` below -86 is raised to it (``e^-86 ≈ 4.5e-38``, a normal
        float32, ``k − 1 ≥ −126``). Arguments that are no decay, at the cost of two selects: ``u`` up to 88.7228
        (``e^88.7228`` is about float32's largest) the same way, past it ``inf``, and a NaN stays NaN."""
        v = tl.minimum(tl.maximum(u, -86.0), 88.7228)
        k = tl.floor(v * 1.4426950408889634 + 0.5)  # round(v / ln 2), from -124 to 128
        r = (v - k * 0.693145751953125) - k * 1.4286068202862268e-06
        p = r * (1.0 / 5040.0) + 1.0 / 720.0  # Horner, from r^7 / 7! down
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        e = (p * ((k.to(tl.int32) + 126) << 23).to(tl.float32, bitcast=True)) * 2.0
        return tl.where(u == u, tl.where(u > 88.7228, float("inf"), e), u)

    @triton.jit
    def _exp_kernel(u_ptr, out_ptr, n, BLOCK_E: tl.constexpr):
        i = tl.program_id(0).to(tl.int64) * BLOCK_E + tl.arange(0, BLOCK_E)
        tl.store(out_ptr + i, _accurate_exp(tl.load(u_ptr + i, mask=i < n, other=0.0)), mask=i < n)

    @triton.jit
    def _position(x_ptr, dt_ptr, b_ptr, c_ptr, rb, t, N, D, NS, d, dm, s, sm):
        """Position ``t`` of sequence ``rb``: ``Δ_t, x_t`` on the block's channels, ``B_t, C_t`` on its state indices
        (zero outside the masks), and the offset of the channels' row in an ``(RB, N, D)`` tensor."""
        row = (rb * N + t) * D + d
        col = (rb * N + t) * NS + s
        dt = tl.load(dt_ptr + row, mask=dm, other=0.0)
        x = tl.load(x_ptr + row, mask=dm, other=0.0)
        b = tl.load(b_ptr + col, mask=sm, other=0.0)
        c = tl.load(c_ptr + col, mask=sm, other=0.0)
        return dt, x, b, c, row

    @triton.jit
    def _block(ns_ptr, D, NS, BATCH, BLOCK_D: tl.constexpr, BLOCK_S: tl.constexpr):
        """This program's sequence ``rb``, channel block ``blk`` and state block ``sb``, its channels ``d`` and state
        indices ``s`` with their masks (``sm``: the run's own state indices), and how many state indices the run
        has (``own``)."""
        rb, blk = tl.program_id(0).to(tl.int64), tl.program_id(1).to(tl.int64)  # offsets may pass 2^31
        sb = tl.program_id(2)
        run = rb // BATCH
        own = tl.minimum(tl.load(ns_ptr + run), NS)
        d = blk * BLOCK_D + tl.arange(0, BLOCK_D)
        s = sb * BLOCK_S + tl.arange(0, BLOCK_S)
        return rb, blk, sb, run, d, s, d < D, s < own, own

    @triton.jit
    def _decays(a_ptr, run, D, NS, d, s, dm, sm):
        """The run's ``A`` on the block (zero outside the masks)."""
        return tl.load(a_ptr + (run * D + d[:, None]) * NS + s[None, :], mask=dm[:, None] & sm[None, :], other=0.0)

    @triton.jit
    def _sequential_forward(
        x_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, ns_ptr, y_ptr, N, D, NS, BATCH, RB,
        BLOCK_D: tl.constexpr, BLOCK_S: tl.constexpr,
    ):  # fmt: skip
        rb, blk, sb, run, d, s, dm, sm, own = _block(ns_ptr, D, NS, BATCH, BLOCK_D, BLOCK_S)
        if sb * BLOCK_S >= own:  # every state index of the block is the run's padding: its share of y stays 0
            return
        a = _decays(a_ptr, run, D, NS, d, s, dm, sm)
        y_share = y_ptr + sb.to(tl.int64) * RB * N * D  # this state block's share of y
        h = tl.zeros((BLOCK_D, BLOCK_S), dtype=tl.float32)
        for t in range(N):
            dt, x, b, c, row = _position(x_ptr, dt_ptr, b_ptr, c_ptr, rb, t, N, D, NS, d, dm, s, sm)
            h = _accurate_exp(dt[:, None] * a) * h + (dt * x)[:, None] * b[None, :]
            tl.store(y_share + row, tl.sum(h * c[None, :], axis=1), mask=dm)

    @triton.jit
    def _sequential_backward(
        x_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, ns_ptr, dy_ptr, dx_ptr, ddt_ptr, da_ptr, db_ptr, dc_ptr, ck_ptr, hs_ptr,
        N, D, NS, BATCH, RB, NCHUNK, CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_S: tl.constexpr,
    ):  # fmt: skip
        rb, blk, sb, run, d, s, dm, sm, own = _block(ns_ptr, D, NS, BATCH, BLOCK_D, BLOCK_S)
        if sb * BLOCK_S >= own:  # every state index of the block is the run's padding: its shares stay 0
            return
        a = _decays(a_ptr, run, D, NS, d, s, dm, sm)
        share = sb.to(tl.int64) * RB * N * D  # this state block's share of ∂x, ∂Δ
        slot = (tl.arange(0, BLOCK_D)[:, None] * BLOCK_S + tl.arange(0, BLOCK_S)[None, :]).to(tl.int64)  # in a buffer
        program = (rb * tl.num_programs(1) + blk) * tl.num_programs(2) + sb
        checkpoints = ck_ptr + program * NCHUNK * BLOCK_D * BLOCK_S
        states = hs_ptr + program * CHUNK * BLOCK_D * BLOCK_S
        # 1. the state entering each chunk
        h = tl.zeros((BLOCK_D, BLOCK_S), dtype=tl.float32)
        for k in range(NCHUNK):
            tl.store(checkpoints + k * BLOCK_D * BLOCK_S + slot, h)
            for t in range(k * CHUNK, tl.minimum(k * CHUNK + CHUNK, N)):
                dt, x, b, c, row = _position(x_ptr, dt_ptr, b_ptr, c_ptr, rb, t, N, D, NS, d, dm, s, sm)
                h = _accurate_exp(dt[:, None] * a) * h + (dt * x)[:, None] * b[None, :]
        # 2. the chunks in reverse
        carry = tl.zeros((BLOCK_D, BLOCK_S), dtype=tl.float32)  # exp(Δ_{t+1} A) ⊙ dh_{t+1}
        da = tl.zeros((BLOCK_D, BLOCK_S), dtype=tl.float32)
        for kk in range(NCHUNK):
            k = NCHUNK - 1 - kk
            t0 = k * CHUNK
            t1 = tl.minimum(t0 + CHUNK, N)
            h = tl.load(checkpoints + k * BLOCK_D * BLOCK_S + slot)
            for t in range(t0, t1):  # the chunk's states, kept for its reverse pass
                dt, x, b, c, row = _position(x_ptr, dt_ptr, b_ptr, c_ptr, rb, t, N, D, NS, d, dm, s, sm)
                h = _accurate_exp(dt[:, None] * a) * h + (dt * x)[:, None] * b[None, :]
                tl.store(states + (t - t0) * BLOCK_D * BLOCK_S + slot, h)
            for i in range(t1 - t0):
                t = t1 - 1 - i
                dt, x, b, c, row = _position(x_ptr, dt_ptr, b_ptr, c_ptr, rb, t, N, D, NS, d, dm, s, sm)
                dy = tl.load(dy_ptr + row, mask=dm, other=0.0)
                h = tl.load(states + (t - t0) * BLOCK_D * BLOCK_S + slot)
                dh = dy[:, None] * c[None, :] + carry
                dtx = dt * x
                part = ((blk * RB + rb) * N + t) * NS + s  # this channel block's share of ∂B_t, ∂C_t
                tl.store(dc_ptr + part, tl.sum(h * dy[:, None], axis=0), mask=sm)
                tl.store(db_ptr + part, tl.sum(dh * dtx[:, None], axis=0), mask=sm)
                d_dtx = tl.sum(dh * b[None, :], axis=1)
                g = dh * (h - dtx[:, None] * b[None, :])  # dh_t ⊙ exp(Δ_t A) h_{t−1}
                da += g * dt[:, None]
                tl.store(dx_ptr + share + row, d_dtx * dt, mask=dm)
                tl.store(ddt_ptr + share + row, d_dtx * x + tl.sum(g * a, axis=1), mask=dm)
                carry = _accurate_exp(dt[:, None] * a) * dh
        tl.store(da_ptr + (rb * D + d[:, None]) * NS + s[None, :], da, mask=dm[:, None] & sm[None, :])

    _INTERPRETED = runs_interpreted(_sequential_forward)
else:  # pragma: no cover - depends on the environment
    _INTERPRETED = False


def sequential_scan_available(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether :func:`sequential_selective_scan` serves ``dtype`` inputs on ``device`` (module docs: dispatch; the
    switch that makes the Mamba family take it is apart)."""
    return (
        triton is not None
        and kernel_switched_on(device, _INTERPRETED, "MQARKIT_SEQUENTIAL_SCAN")
        and dtype == torch.float32
    )


def accurate_exp(u: torch.Tensor) -> torch.Tensor:
    """The kernels' ``exp`` (``_accurate_exp``) elementwise on a float32 tensor, where the kernels serve it: how its
    accuracy is checked against ``torch.exp``."""
    if not sequential_scan_available(u.device, u.dtype):
        raise ValueError(f"u: float32 on CUDA or under Triton's interpreter, not {u.dtype} on {u.device}")
    u = u.contiguous()
    out = torch.empty_like(u)
    _exp_kernel[(triton.cdiv(u.numel(), 1024),)](u, out, u.numel(), BLOCK_E=1024)
    return out


def sequential_chosen() -> bool:
    """Whether ``$MQARKIT_SCAN`` asks the Mamba family for these kernels (``sequential``; read per call)."""
    return os.environ.get(SWITCH) == "sequential"


class _SequentialScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dt, a, b, c, states, chunk, launch, state_block):
        r, bsz, n, di = x.shape
        ns = a.shape[-1]
        x, dt = x.reshape(r * bsz, n, di).contiguous(), dt.reshape(r * bsz, n, di).contiguous()
        a, b, c = a.contiguous(), b.reshape(r * bsz, n, ns).contiguous(), c.reshape(r * bsz, n, ns).contiguous()
        grid, (block_d, block_s) = _grid(r * bsz, di, ns, launch, state_block)
        y = _shares(grid[2], x)  # one share of y per state block, added below
        _sequential_forward[grid](
            x, dt, a, b, c, states, y, n, di, ns, bsz, r * bsz, BLOCK_D=block_d, BLOCK_S=block_s,
            num_warps=launch.warps,
        )  # fmt: skip
        ctx.save_for_backward(x, dt, a, b, c, states)
        ctx.shape, ctx.chunk, ctx.launch, ctx.state_block = (r, bsz, n, di, ns), chunk, launch, state_block
        return _added(y).view(r, bsz, n, di)

    @staticmethod
    def backward(ctx, dy):
        x, dt, a, b, c, states = ctx.saved_tensors
        r, bsz, n, di, ns = ctx.shape
        grid, (block_d, block_s) = _grid(r * bsz, di, ns, ctx.launch, ctx.state_block)
        chunk = ctx.chunk or chunk_length(n)
        nchunk = triton.cdiv(n, chunk)
        dy = dy.reshape(r * bsz, n, di).contiguous()
        dx, ddt = _shares(grid[2], x), _shares(grid[2], x)
        da = torch.zeros(r * bsz, di, ns, device=x.device, dtype=x.dtype)  # zeros: a run's padded states stay so
        db = torch.zeros(grid[1], r * bsz, n, ns, device=x.device, dtype=x.dtype)
        dc = torch.zeros_like(db)
        programs = math.prod(grid)
        checkpoints = torch.empty(programs * nchunk * block_d * block_s, device=x.device, dtype=x.dtype)
        chunk_states = torch.empty(programs * chunk * block_d * block_s, device=x.device, dtype=x.dtype)
        _sequential_backward[grid](
            x, dt, a, b, c, states, dy, dx, ddt, da, db, dc, checkpoints, chunk_states, n, di, ns, bsz, r * bsz,
            nchunk, CHUNK=chunk, BLOCK_D=block_d, BLOCK_S=block_s, num_warps=ctx.launch.warps,
        )  # fmt: skip
        shape = (r, bsz, n, di)
        d_a = da.view(r, bsz, di, ns).sum(1)
        d_b = db.sum(0).view(r, bsz, n, ns)
        d_c = dc.sum(0).view(r, bsz, n, ns)
        return _added(dx).view(shape), _added(ddt).view(shape), d_a, d_b, d_c, None, None, None, None


def _grid(rows: int, di: int, ns: int, launch: Launch, state_block: int) -> tuple[tuple[int, ...], tuple[int, int]]:
    """Both kernels' grid (sequences, channel blocks, state blocks) and their ``(BLOCK_D, BLOCK_S)``."""
    block_d, block_s = block_shape(ns, launch.tile, state_block)
    return (rows, -(-di // block_d), -(-ns // block_s)), (block_d, block_s)


def _shares(blocks: int, like: torch.Tensor) -> torch.Tensor:
    """``(blocks, *like.shape)`` zeros for the state blocks' shares of a ``like``-shaped result (a block that holds
    none of its run's state indices writes nothing)."""
    return torch.zeros((blocks, *like.shape), device=like.device, dtype=like.dtype)


def _added(shares: torch.Tensor) -> torch.Tensor:
    """The state blocks' shares added (the one share itself, uncopied, where there is one)."""
    return shares[0] if shares.shape[0] == 1 else shares.sum(0)


def sequential_selective_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    states: torch.Tensor | None = None,
    chunk: int | None = None,
    launch: Launch | None = None,
    state_block: int = STATE_BLOCK,
) -> torch.Tensor:
    """``y (R, B, N, d_i)`` of the scan (module docs) from ``x, dt (R, B, N, d_i)``, ``a (R, d_i, n)``, ``b, c
    (R, B, N, n)``, float32; differentiable in the first five. ``states (R,)`` (integers on ``x``'s device; default
    ``n`` for every run): each run's own state indices, the rest padding (their ``A, B, C`` read as 0, their
    gradients 0). ``chunk``: positions per backward chunk (default :func:`chunk_length`; another value changes the
    buffers' sizes, not the result). ``launch``: entries per program's state block and warps, both kernels
    (:class:`~mqarkit.gpu.frontier.kernels.selective_scan.Launch`; default :func:`default_launch` of ``d_i``; another
    block holds other channels together, which changes how ``∂B, ∂C`` are split into sums, so their float32 rounding,
    not what they are); ``state_block``: state indices a block (a power of two ≥ 2; :func:`block_shape`), which
    likewise splits ``y, ∂x, ∂Δ`` into shares otherwise. Callers check :func:`sequential_scan_available` first."""
    states = checked_states(x, dt, a, b, c, states)
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk={chunk!r}: must be an integer >= 1")
    if launch is None:
        launch = default_launch(x.shape[-1])
    if not isinstance(launch, Launch):
        raise ValueError(f"launch={launch!r}: must be a Launch or None")
    if isinstance(state_block, bool) or not isinstance(state_block, int):
        raise ValueError(f"state_block={state_block!r}: must be a power of two from 2 to {MAX_STATE_BLOCK}")
    block_shape(a.shape[-1], launch.tile, state_block)  # the state block's rule, before any work
    return _SequentialScan.apply(x, dt, a, b, c, states, chunk, launch, state_block)
