"""The delta rules' output norm per head (gated in Gated DeltaNet): one fused call against the eager chain.

Usage: ``python benchmarks/head_norm.py [--device cuda] [--out-dir docs/results] [--repeats 20] [--small]``; writes
``head_norm.json`` and ``head_norm.md`` under ``--out-dir``.

What the families' ``output`` takes: fla's ``o (R, B, N, H, V)`` in bf16, zero past each run's value width ``V_r``
(the widths cycled over the runs as in the speed table's stacks), the runs' norm weights ``w (R, V)`` float32 and, for
Gated DeltaNet, the gate ``(R, B, N, H, V)`` in bf16. Eager: ``heads.rms_norm`` (float32) cast back to bf16, as the
families ran it before the kernel. Fused: ``kernels.head_norm.head_rms_norm``. Shapes: DeltaNet's d = 64 row (4 heads,
``V_r`` = 24, 48, 72) and Gated DeltaNet's (``V_r`` = 32, 64, 96, gated), 12 runs, batch 256, N = 256, and both at
the evaluation length (batch 64, N = 1024); ``--small`` takes tiny ones (for a CPU). Each figure is the median of
``--repeats`` timed calls after warm-up (CUDA events on a GPU; :mod:`mqarkit.gpu.timing`); forward+backward takes the
gradients of ``o``, ``w`` and the gate. Before timing the paths are compared on the same inputs (largest difference
over the largest eager magnitude, outputs and gradients). ``served`` says what ``head_rms_norm`` ran (``kernel``, or
``reference``, the plain rule, as on CPU tensors without ``TRITON_INTERPRET=1``); figures are keyed by it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from mqarkit.gpu.frontier.families.heads import per_run, rms_norm
from mqarkit.gpu.frontier.kernels.head_norm import fused_available, head_rms_norm
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

# (family, R, B, N, H, the runs' value widths cycled, gated)
SHAPES = tuple(
    (family, 12, b, n, 4, widths, gated)
    for b, n in ((256, 256), (64, 1024))
    for family, widths, gated in (("delta_net", (24, 48, 72), False), ("gated_delta_net", (32, 64, 96), True))
)
SMALL_SHAPES = (("delta_net", 3, 2, 5, 2, (3, 5), False), ("gated_delta_net", 2, 2, 4, 3, (8, 6), True))


def eager(o, w, gate, *, widths):
    return rms_norm(o, w[:, None, None, None, :], per_run(widths, o), gate).to(o.dtype)


def fused(o, w, gate, *, widths):
    return head_rms_norm(o, w, widths, gate)


def difference(got, want) -> float:
    """The largest :func:`~mqarkit.tolerances.scaled_error` over paired tensors (outputs, or gradients)."""
    return max(scaled_error(a, b) for a, b in zip(got, want))


def measure(shape, dtype: torch.dtype, device: torch.device, repeats: int) -> dict[str, object]:
    family, r, b, n, h, cycle, gated = shape
    runs_widths = torch.tensor([cycle[i % len(cycle)] for i in range(r)], device=device)
    v = max(cycle)
    row: dict[str, object] = {"family": family, "R": r, "B": b, "N": n, "H": h, "V": list(cycle), "gated": gated}
    gd = torch.Generator(device=device).manual_seed(n * 1000 + v)
    with out_of_memory_recorded(row, device):
        pad = (torch.arange(v, device=device)[None, :] < runs_widths[:, None]).to(dtype)[:, None, None, None, :]
        o = (torch.randn(r, b, n, h, v, device=device, dtype=dtype, generator=gd) * pad).requires_grad_()
        w = (1 + 0.1 * torch.randn(r, v, device=device, generator=gd)).requires_grad_()
        gate = torch.randn(o.shape, device=device, dtype=dtype, generator=gd) * pad if gated else None
        gate = None if gate is None else gate.requires_grad_()
        dy = torch.randn(o.shape, device=device, dtype=dtype, generator=gd)
        inputs = (o, w) if gate is None else (o, w, gate)
        row["served"] = served = "kernel" if fused_available(o) else "reference"
        paths = {"eager": eager, served: fused}
        results = {}
        for name, fn in paths.items():
            y = fn(o, w, gate, widths=runs_widths)
            results[name] = [y.detach()], torch.autograd.grad(y, inputs, dy)
        row["output_difference"] = difference(results[served][0], results["eager"][0])
        row["gradient_difference"] = difference(results[served][1], results["eager"][1])
        del results
        for name, fn in paths.items():
            timed = forward_and_backward_ms(
                lambda *xs, fn=fn: fn(xs[0], xs[1], xs[2] if gated else None, widths=runs_widths),
                inputs,
                dy,
                repeats=repeats,
                device=device,
            )
            row |= {f"{name}_{key}": value for key, value in timed.items()}
        add_speedups(row, served)
    return row


def write(report: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "head_norm.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# The delta rules' output norm per head: head_rms_norm against the eager chain",
        "",
        environment_line(report),
        "",
        f"{report['dtype']} inputs; median of {report['repeats']} calls after warm-up (CUDA events on a GPU, "
        "perf_counter on the CPU), in ms. Served: what head_rms_norm ran (the Triton kernel, or the plain rule). "
        "Difference: max |head_rms_norm − eager| over max |eager|, outputs and gradients.",
        "",
        "| family | R | B | N | H | V | served | eager fwd | head_rms_norm fwd | eager fwd+bwd | head_rms_norm fwd+bwd "
        "| speed-up fwd, fwd+bwd | difference (out, grad) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        shape = f"| {r['family']} | {r['R']} | {r['B']} | {r['N']} | {r['H']} | {', '.join(map(str, r['V']))} |"
        if "error" in r:
            lines.append(f"{shape} {r['error']} |" + " — |" * 6)
            continue
        s = r["served"]
        lines.append(
            f"{shape} {s} | {timed_cell(r, 'eager', 'forward')} | {timed_cell(r, s, 'forward')} | "
            f"{timed_cell(r, 'eager', 'forward_backward')} | {timed_cell(r, s, 'forward_backward')} | "
            f"{speedup_cells(r)} | {r['output_difference']:.1e}, {r['gradient_difference']:.1e} |"
        )
    (out_dir / "head_norm.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return run_over_shapes(
        "head_norm", __doc__, argv, shapes=SHAPES, small_shapes=SMALL_SHAPES, measure=measure, write=write
    )


if __name__ == "__main__":
    raise SystemExit(main())
