"""The delta rules' output norm per head (optionally gated), per run: one Triton kernel forward, one backward, beside
the plain-torch rule it computes (:func:`~mqarkit.gpu.frontier.families.heads.rms_norm`).

Symbols: run ``r``, row ``i`` (an example, position and head of run ``r``: ``B·N·H`` rows a run), channel ``v`` of
``x (R, B, N, H, V)`` (fla's output ``o``, zero at a run's padded channels ``v ≥ V_r``); ``w (R, V)`` the run's norm
weight (shared by its heads); ``V_r`` = ``widths[r]``, the run's true value width; ``ε`` =
:data:`~mqarkit.gpu.frontier.families.heads.NORM_EPS`; optional ``gate (R, B, N, H, V)`` (Gated DeltaNet's output
gate)::

    ρ_i  = (Σ_v x_{i,v}² / V_r + ε)^{−1/2}          (the padded channels are 0 and add nothing)
    n    = ρ x
    y    = n · w_r                                   (DeltaNet)
    y    = n · w_r · SiLU(gate)                      (Gated DeltaNet)

Eager torch ran this as a chain over float32 copies (a conversion, the square, the sum, the products, the gate's SiLU,
the conversion back, and about twice that in the backward). Here it is one pass each way, float32 inside, ``y`` in
``x``'s dtype (what the output projection takes under autocast).

Backward, per row (``g = ∂y``; ``s = SiLU(gate)`` or 1; ``∂ρ/∂x_j = −ρ³ x_j / V_r``)::

    dn     = g · w_r · s
    dx     = ρ · (dn − n · Σ_v dn_v n_v / V_r)
    dw_r   = Σ_{rows of r} g · n · s
    dgate  = g · n · w_r · σ(gate) · (1 + gate · (1 − σ(gate)))        (SiLU′)

Kernels: a tile is ``(BLOCK_ROWS, BLOCK_V)`` rows of one run (``BLOCK_V`` the next power of two ≥ ``V``, masked), so
``Σ_v`` is a row reduction inside the program. Forward grid ``(R, ⌈B·N·H / BLOCK_ROWS⌉)``. Backward grid ``(R, P)``
with ``P ≤`` :data:`BACKWARD_PROGRAMS` programs a run, each walking every ``P``-th tile of its run and accumulating
``dw`` in a float32 tile, reduced once and written as the program's partial ``(R, P, V)``, which torch sums over
``P``: no atomics, so the result does not depend on scheduling. Nothing but ``x, w, widths, gate`` is saved; ``ρ, n``
are recomputed.

Dispatch: the kernels serve contiguous float32 / bfloat16 / float16 CUDA tensors (any device under the Triton
interpreter, ``TRITON_INTERPRET=1`` at import) with ``V ≤`` :data:`MAX_WIDTH`, when triton imports, the call is not
being traced by ``torch.compile`` (which fuses the plain form itself) and ``MQARKIT_FUSED_HEAD_NORM`` is not ``0``
(read per call); everything else (CPU tensors, float64) takes :func:`head_rms_norm_reference`.

Status (fifteenth session, one H100): its two GPU tests (``test_head_norm_kernel.py``) and the delta rules' bf16
family tests through it passed; forward and backward took 2.19 ms against the eager chain's 13.00 in DeltaNet's d = 64
stack (R = 12, B = N = 256), 1.95 against 23.78 in Gated DeltaNet's (``docs/results/head_norm.md``). Its tiles below
are untuned.
"""

from __future__ import annotations

import torch

from mqarkit.gpu.device import kernel_switched_on, launch_device, runs_interpreted
from mqarkit.gpu.frontier.families.heads import NORM_EPS, per_run, rms_norm

try:  # guarded: CI and CPU machines have no triton
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None
    tl = None

FORWARD_TILE, BACKWARD_TILE = 4096, 2048  # elements of a (BLOCK_ROWS, BLOCK_V) tile; not tuned on a GPU
WARPS = 4
BACKWARD_PROGRAMS = 1024  # programs a run in the backward (its dw partials: R · P · V float32)
MAX_WIDTH = 1024  # the widest head a tile row holds; wider: the reference
_KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _checked(x: torch.Tensor, w: torch.Tensor, widths: torch.Tensor, gate: torch.Tensor | None) -> None:
    """A ``ValueError`` naming the parameter and its rule for any input the function does not take."""
    if not isinstance(x, torch.Tensor) or x.dim() != 5 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x: needs a 5-D floating tensor (R, B, N, H, V), got {shape}")
    r, v = x.shape[0], x.shape[-1]
    if not isinstance(w, torch.Tensor) or tuple(w.shape) != (r, v) or not w.is_floating_point():
        shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise ValueError(f"w: needs a floating tensor of shape (R, V) = ({r}, {v}), got {shape}")
    if not isinstance(widths, torch.Tensor) or tuple(widths.shape) != (r,) or widths.requires_grad:
        shape = tuple(widths.shape) if isinstance(widths, torch.Tensor) else type(widths).__name__
        raise ValueError(f"widths: needs a tensor of shape (R,) = ({r},) without grad (each run's V), got {shape}")
    if gate is not None and (not isinstance(gate, torch.Tensor) or gate.shape != x.shape):
        shape = tuple(gate.shape) if isinstance(gate, torch.Tensor) else type(gate).__name__
        raise ValueError(f"gate: needs x's shape {tuple(x.shape)}, got {shape}")
    for name, t in (("w", w), ("widths", widths), ("gate", gate)):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name}: on {t.device}, x on {x.device}: every tensor must be on x's device")


def head_rms_norm_reference(
    x: torch.Tensor, w: torch.Tensor, widths: torch.Tensor, gate: torch.Tensor | None = None
) -> torch.Tensor:
    """``y (R, B, N, H, V)`` of the module docstring by :func:`~mqarkit.gpu.frontier.families.heads.rms_norm` (float32
    at least), in ``x``'s dtype."""
    _checked(x, w, widths, gate)
    return rms_norm(x, w[:, None, None, None, :], per_run(widths, x), gate).to(x.dtype)


if triton is not None:

    @triton.jit
    def _tile(r, i, ROWS, V, BLOCK_V: tl.constexpr):
        """Offsets of rows ``i`` of run ``r`` (``(BLOCK_ROWS, BLOCK_V)``) and their mask."""
        v = tl.arange(0, BLOCK_V)
        ok = (i < ROWS)[:, None] & (v < V)[None, :]
        return (r * ROWS + i)[:, None] * V + v[None, :], ok

    @triton.jit
    def _normed(x_ptr, off, ok, width, eps):
        """``x`` as float32, ``ρ`` (a column) and ``n = ρ x``."""
        x = tl.load(x_ptr + off, mask=ok, other=0.0).to(tl.float32)
        rho = tl.rsqrt(tl.sum(x * x, 1) / width + eps)[:, None]
        return x, rho, x * rho

    @triton.jit
    def _forward_kernel(
        x_ptr, w_ptr, widths_ptr, gate_ptr, y_ptr,  # x, gate, y (R, ROWS, V); w (R, V); widths (R,) float32
        ROWS, V, eps,
        GATED: tl.constexpr, BLOCK_ROWS: tl.constexpr, BLOCK_V: tl.constexpr,
    ):  # fmt: skip
        r = tl.program_id(0).to(tl.int64)
        i = tl.program_id(1).to(tl.int64) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        off, ok = _tile(r, i, ROWS, V, BLOCK_V)
        v = tl.arange(0, BLOCK_V)
        w = tl.load(w_ptr + r * V + v, mask=v < V, other=0.0).to(tl.float32)[None, :]
        _, _, n = _normed(x_ptr, off, ok, tl.load(widths_ptr + r), eps)
        y = n * w
        if GATED:
            g = tl.load(gate_ptr + off, mask=ok, other=0.0).to(tl.float32)
            y = y * g * tl.sigmoid(g)
        tl.store(y_ptr + off, y.to(y_ptr.dtype.element_ty), mask=ok)

    @triton.jit
    def _backward_kernel(
        x_ptr, w_ptr, widths_ptr, gate_ptr, dy_ptr, dx_ptr, dgate_ptr, dw_ptr,  # dw partial (R, P, V) float32
        ROWS, V, eps,
        GATED: tl.constexpr, BLOCK_ROWS: tl.constexpr, BLOCK_V: tl.constexpr,
    ):  # fmt: skip
        r = tl.program_id(0).to(tl.int64)
        p, programs = tl.program_id(1), tl.num_programs(1)
        v = tl.arange(0, BLOCK_V)
        w = tl.load(w_ptr + r * V + v, mask=v < V, other=0.0).to(tl.float32)[None, :]
        width = tl.load(widths_ptr + r)
        dw = tl.zeros((BLOCK_ROWS, BLOCK_V), dtype=tl.float32)
        for start in range(p * BLOCK_ROWS, ROWS, programs * BLOCK_ROWS):
            i = start + tl.arange(0, BLOCK_ROWS).to(tl.int64)
            off, ok = _tile(r, i, ROWS, V, BLOCK_V)
            x, rho, n = _normed(x_ptr, off, ok, width, eps)
            g = tl.load(dy_ptr + off, mask=ok, other=0.0).to(tl.float32)
            if GATED:
                z = tl.load(gate_ptr + off, mask=ok, other=0.0).to(tl.float32)
                sig = tl.sigmoid(z)
                dgate = g * n * w * sig * (1.0 + z * (1.0 - sig))
                tl.store(dgate_ptr + off, dgate.to(dgate_ptr.dtype.element_ty), mask=ok)
                g = g * z * sig  # g · s
            dw += g * n
            dn = g * w
            dx = rho * (dn - n * (tl.sum(dn * n, 1) / width)[:, None])
            tl.store(dx_ptr + off, dx.to(dx_ptr.dtype.element_ty), mask=ok)
        tl.store(dw_ptr + (r * programs + p) * V + v, tl.sum(dw, 0), mask=v < V)

    _INTERPRETED = runs_interpreted(_forward_kernel)
else:  # pragma: no cover - depends on the environment
    _INTERPRETED = False


def fused_available(x: torch.Tensor) -> bool:
    """Whether :func:`head_rms_norm` runs the kernels for ``x`` (module docs: dispatch)."""
    return (
        triton is not None
        and kernel_switched_on(x.device, _INTERPRETED, "MQARKIT_FUSED_HEAD_NORM")
        and x.dtype in _KERNEL_DTYPES
        and x.numel() > 0
        and x.shape[-1] <= MAX_WIDTH
        and not torch.compiler.is_compiling()
    )


def _blocks(v: int, tile: int) -> tuple[int, int]:
    """``(BLOCK_ROWS, BLOCK_V)`` of a tile of about ``tile`` elements."""
    block_v = max(2, triton.next_power_of_2(v))
    return max(1, tile // block_v), block_v


class _HeadRmsNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, widths, gate):
        r, v = x.shape[0], x.shape[-1]
        rows = x[0].numel() // v
        block_rows, block_v = _blocks(v, FORWARD_TILE)
        y = torch.empty_like(x)
        with launch_device(x):
            _forward_kernel[(r, triton.cdiv(rows, block_rows))](
                x, w, widths, x if gate is None else gate, y, rows, v, NORM_EPS,
                GATED=gate is not None, BLOCK_ROWS=block_rows, BLOCK_V=block_v, num_warps=WARPS,
            )  # fmt: skip
        ctx.save_for_backward(x, w, widths, gate)
        ctx.w_dtype = w.dtype
        return y

    @staticmethod
    def backward(ctx, dy):
        x, w, widths, gate = ctx.saved_tensors
        r, v = x.shape[0], x.shape[-1]
        rows = x[0].numel() // v
        block_rows, block_v = _blocks(v, BACKWARD_TILE)
        programs = min(triton.cdiv(rows, block_rows), BACKWARD_PROGRAMS)
        dx = torch.empty_like(x)
        dgate = None if gate is None else torch.empty_like(gate)
        dw = torch.empty((r, programs, v), dtype=torch.float32, device=x.device)  # every entry written
        with launch_device(x):
            _backward_kernel[(r, programs)](
                x, w, widths, x if gate is None else gate, dy.contiguous(), dx, dx if dgate is None else dgate, dw,
                rows, v, NORM_EPS, GATED=gate is not None, BLOCK_ROWS=block_rows, BLOCK_V=block_v, num_warps=WARPS,
            )  # fmt: skip
        return dx, dw.sum(1).to(ctx.w_dtype), None, dgate


def head_rms_norm(
    x: torch.Tensor, w: torch.Tensor, widths: torch.Tensor, gate: torch.Tensor | None = None
) -> torch.Tensor:
    """``y (R, B, N, H, V)`` of the module docstring in ``x``'s dtype: ``x (R, B, N, H, V)`` zero past each run's
    width, ``w (R, V)``, ``widths (R,)`` each run's ``V`` (no gradient), ``gate`` None or ``x``'s shape. Gradients for
    ``x``, ``w`` and ``gate`` in their dtypes. The kernels where they serve (:func:`fused_available`), else
    :func:`head_rms_norm_reference`."""
    _checked(x, w, widths, gate)
    if not fused_available(x):
        return head_rms_norm_reference(x, w, widths, gate)
    gate = None if gate is None else gate.contiguous()
    return _HeadRmsNorm.apply(x.contiguous(), w.contiguous(), widths.to(torch.float32).contiguous(), gate)
