"""The delta rules' short convolution with its SiLU, per-head l2 norm and scale: one fused call against the eager chain.

Usage: ``python benchmarks/short_conv.py [--device cuda] [--out-dir docs/results] [--repeats 20] [--dtype bfloat16]
[--small]``; writes ``short_conv.json`` and ``short_conv.md`` under ``--out-dir``.

What DeltaNet's fast path makes of its projection: ``x (R, B, N, 3·H·K + H + pad)`` as ``ops.fused_projection`` returns
it (``q, k, v``, then β's ``H`` columns and the alignment pad), split into views; filters ``w (R, H·K, 4)`` float32;
``scale (R,) = K^−1/2``. Eager, as ``DeltaNet.inputs`` ran before the kernel: ``heads.short_conv``, then for ``q, k``
``l2_normalize`` in float32 (and the scale for ``q``), each cast to ``x``'s dtype (the cast fla's call made). Fused:
``kernels.short_conv.short_conv_heads`` per tensor (``K`` for ``q, k``). Shapes ``(R, B, N, H, K)``: DeltaNet's d = 64
speed row's widest and narrowest runs (K = 72, 24) and Gated DeltaNet's (16, 48) at batch 256, and the evaluation
length (B = 64, N = 1024); ``--small`` takes tiny ones (for a CPU). Each figure is the median of ``--repeats`` timed
calls after warm-up (CUDA events on a GPU; :mod:`mqarkit.gpu.timing`); forward+backward takes the gradients of ``x``
and the three ``w``. Where the kernel serves, the heads' two backwards are timed too (``RECOMPUTE_HEAD_BLOCK`` forced:
``dz`` recomputed, or written first), backing the module's choice. Before timing, the paths are compared on the same
inputs (largest difference over the largest eager magnitude, outputs and gradients), so a faster wrong path shows.
``served`` says what ``short_conv_heads`` ran (``fused_available``: ``kernel``, or ``reference``, its plain-torch
form, as on CPU tensors without ``TRITON_INTERPRET=1``); figures are keyed by it. A shape out of memory is recorded.
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import torch

import mqarkit.gpu.frontier.kernels.short_conv as kernel
from mqarkit.gpu.frontier.families.heads import l2_normalize, per_run, short_conv
from mqarkit.gpu.frontier.ops import PROJECTION_ALIGN, init_conv
from mqarkit.gpu.frontier.runner import environment_line
from mqarkit.gpu.timing import (
    add_speedups,
    forward_and_backward_ms,
    out_of_memory_recorded,
    run_over_shapes,
    speedup_cells,
    timed_cell,
)
from mqarkit.tolerances import scaled_error

# (R, B, N, H, K): DeltaNet's K = 72, 24 and Gated DeltaNet's 16, 48 at d = 64, batch 256; the evaluation length
SHAPES = tuple((12, 256, 256, 4, k) for k in (72, 24, 16, 48)) + ((12, 64, 1024, 4, 64),)
SMALL_SHAPES = ((2, 3, 16, 2, 8), (2, 2, 24, 3, 24))
TAPS = 4
VARIANTS = {"recompute": 1 << 20, "dz_written": 0}  # RECOMPUTE_HEAD_BLOCK forcing each backward of the heads


def views(x: torch.Tensor, c: int) -> tuple[torch.Tensor, ...]:
    return x[..., : 3 * c].split(c, dim=-1)


def eager(x, wq, wk, wv, *, scale, k):
    xq, xk, xv = views(x, wq.shape[1])
    q = l2_normalize(short_conv(xq, wq).float().unflatten(-1, (-1, k)))
    q = (q * per_run(scale, q)).to(x.dtype).flatten(-2)
    kk = l2_normalize(short_conv(xk, wk).float().unflatten(-1, (-1, k))).to(x.dtype).flatten(-2)
    return q, kk, short_conv(xv, wv).to(x.dtype)


def fused(x, wq, wk, wv, *, scale, k):
    xq, xk, xv = views(x, wq.shape[1])
    heads = kernel.short_conv_heads
    return heads(xq, wq, scale, k), heads(xk, wk, None, k), heads(xv, wv)


def difference(got, want) -> float:
    """The largest :func:`~mqarkit.tolerances.scaled_error` over paired tensors (outputs, or gradients)."""
    return max(scaled_error(a, b) for a, b in zip(got, want))


def outputs_and_gradients(fn, inputs, dy):
    out = fn(*inputs)
    return [o.detach() for o in out], torch.autograd.grad(out, inputs, dy)


def measure(shape, dtype: torch.dtype, device: torch.device, repeats: int) -> dict[str, object]:
    r, b, n, h, k = shape
    c = h * k
    row: dict[str, object] = dict(zip("RBNHK", shape))
    seed = n * 1000 + k
    g, gd = torch.Generator().manual_seed(seed), torch.Generator(device=device).manual_seed(seed)
    with out_of_memory_recorded(row, device):
        width = 3 * c + h + (-(3 * c + h) % PROJECTION_ALIGN)
        x = torch.randn(r, b, n, width, device=device, dtype=dtype, generator=gd).requires_grad_()
        ws = [init_conv((r, c, TAPS), g).to(device).requires_grad_() for _ in range(3)]
        scale = torch.full((r,), k**-0.5, device=device)
        dy = tuple(torch.randn(r, b, n, c, device=device, dtype=dtype, generator=gd) for _ in range(3))
        inputs = (x, *ws)
        row["served"] = served = "kernel" if kernel.fused_available(views(x, c)[0], k) else "reference"
        paths = {"eager": partial(eager, scale=scale, k=k), served: partial(fused, scale=scale, k=k)}
        want, want_grads = outputs_and_gradients(paths["eager"], inputs, dy)
        got, got_grads = outputs_and_gradients(paths[served], inputs, dy)
        row["output_difference"], row["gradient_difference"] = difference(got, want), difference(got_grads, want_grads)
        del got, got_grads, want
        if served == "kernel":
            row["default_backward"] = "dz_written" if kernel.writes_dz(k) else "recompute"
            previous = kernel.RECOMPUTE_HEAD_BLOCK
            try:
                for name, block in VARIANTS.items():
                    kernel.RECOMPUTE_HEAD_BLOCK = block
                    row[f"{name}_gradient_difference"] = difference(
                        outputs_and_gradients(paths[served], inputs, dy)[1], want_grads
                    )
                    timed = forward_and_backward_ms(paths[served], inputs, dy, repeats=repeats, device=device)
                    row |= {f"{name}_{key}": value for key, value in timed.items()}
            finally:
                kernel.RECOMPUTE_HEAD_BLOCK = previous
        del want_grads
        for name, fn in paths.items():
            timed = forward_and_backward_ms(fn, inputs, dy, repeats=repeats, device=device)
            row |= {f"{name}_{key}": value for key, value in timed.items()}
        add_speedups(row, served)
    return row


def write(report: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "short_conv.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Short convolution, SiLU, l2 norm and scale: short_conv_heads against the eager chain",
        "",
        environment_line(report),
        "",
        f"q̂, k̂, v from split views of one projection, {TAPS} taps, {report['dtype']}; median of {report['repeats']} "
        "calls after warm-up (CUDA events on a GPU, perf_counter on the CPU), in ms. Served: what short_conv_heads "
        "ran (the Triton kernel, or its plain-torch reference). Backwards (fwd+bwd): the heads' dz recomputed, or "
        "written first (default: the module's choice for K). Difference: max |short_conv_heads − eager| over "
        "max |eager|, outputs and gradients.",
        "",
        "| R | B | N | H | K | served | eager fwd | short_conv_heads fwd | eager fwd+bwd | short_conv_heads fwd+bwd | "
        "speed-up fwd, fwd+bwd | recompute, dz written fwd+bwd (default) | difference (out, grad) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    for r in report["rows"]:
        shape = f"| {r['R']} | {r['B']} | {r['N']} | {r['H']} | {r['K']} |"
        if "error" in r:
            lines.append(f"{shape} {r['error']} |" + " — |" * 7)
            continue
        s = r["served"]
        lines.append(
            f"{shape} {s} | {timed_cell(r, 'eager', 'forward')} | {timed_cell(r, s, 'forward')} | "
            f"{timed_cell(r, 'eager', 'forward_backward')} | {timed_cell(r, s, 'forward_backward')} | "
            f"{speedup_cells(r)} | "
            f"{timed_cell(r, 'recompute', 'forward_backward')}, {timed_cell(r, 'dz_written', 'forward_backward')} "
            f"({r.get('default_backward', '—')}) | {r['output_difference']:.1e}, {r['gradient_difference']:.1e} |"
        )
    (out_dir / "short_conv.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_over_shapes(
        "short_conv", __doc__, argv, shapes=SHAPES, small_shapes=SMALL_SHAPES, measure=measure, write=write
    )


if __name__ == "__main__":
    raise SystemExit(main())
