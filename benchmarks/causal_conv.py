"""The stacked causal long convolution two ways: by FFT and as a Toeplitz matmul, forward and forward+backward.

Usage: ``python benchmarks/causal_conv.py [--device cuda] [--out-dir docs/results] [--repeats 20]``; writes
``causal_conv.json`` and ``causal_conv.md`` under ``--out-dir``.

Both are :mod:`mqarkit.gpu.frontier.ops` functions as the families call them (``fft_causal_conv``,
``toeplitz_causal_conv``; float32, autocast off; the Toeplitz one also with TF32 allowed for its matmul), on a stack
of ``R = 12`` runs, batch 256 (the frontier's), at the [B] Fig. 2 training lengths ``N ∈ {64, 128, 256}`` and
``d ∈ {64, 128, 256}`` channels, the filter ``L = 1024`` taps long (the reference Hyena's ``l_max``). Each figure is
the median of ``--repeats`` timed calls after warm-up (CUDA events on a GPU; :mod:`mqarkit.gpu.timing`);
forward+backward takes the gradient of both inputs. Before timing, the paths are compared on the same inputs (largest
difference over the largest output magnitude), so a faster wrong path shows.
A combination that runs out of memory is recorded as such.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from mqarkit.gpu.frontier.ops import fft_causal_conv, toeplitz_causal_conv
from mqarkit.gpu.frontier.runner import environment, environment_line
from mqarkit.gpu.timing import forward_and_backward_ms, kernel_benchmark_parser, timed_cell

RUNS, BATCH, FILTER_LEN = 12, 256, 1024
LENGTHS, WIDTHS = (64, 128, 256), (64, 128, 256)


def toeplitz_tf32(u: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The Toeplitz matmul with TF32 allowed for its float32 matmul (10-bit mantissa inputs, float32 accumulation)."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        return toeplitz_causal_conv(u, h)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


PATHS = {"fft": fft_causal_conv, "toeplitz": toeplitz_causal_conv, "toeplitz_tf32": toeplitz_tf32}


def measure(n: int, d: int, device: torch.device, repeats: int) -> dict[str, object]:
    g = torch.Generator(device=device).manual_seed(n * 1000 + d)
    u = torch.randn(RUNS, BATCH, n, d, device=device, generator=g, requires_grad=True)
    h = (torch.randn(RUNS, d, FILTER_LEN, device=device, generator=g) * 0.02).requires_grad_()
    dy = torch.randn(RUNS, BATCH, n, d, device=device, generator=g)
    row: dict[str, object] = {"N": n, "d": d}
    with torch.no_grad():
        a = fft_causal_conv(u, h)
        for name in ("toeplitz", "toeplitz_tf32"):
            row[f"{name}_relative_difference"] = ((PATHS[name](u, h) - a).abs().max() / a.abs().max()).item()
    for name, conv in PATHS.items():
        timed = forward_and_backward_ms(conv, (u, h), dy, repeats=repeats, device=device)
        row |= {f"{name}_{key}": value for key, value in timed.items()}
    for name in ("toeplitz", "toeplitz_tf32"):
        if "fft_forward_backward_ms" in row and f"{name}_forward_backward_ms" in row:
            row[f"{name}_speedup"] = row["fft_forward_backward_ms"] / row[f"{name}_forward_backward_ms"]
    return row


def write(report: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "causal_conv.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Causal long convolution: FFT against Toeplitz matmul",
        "",
        environment_line(report),
        "",
        f"Stack of {RUNS} runs, batch {BATCH}, filter {FILTER_LEN} taps, float32; median of "
        f"{report['repeats']} calls after warm-up (CUDA events on a GPU, perf_counter on the CPU), in ms. "
        "Difference: max |fft − toeplitz| over max |fft|.",
        "",
        "| N | d | fft fwd | toeplitz fwd | tf32 fwd | fft fwd+bwd | toeplitz fwd+bwd | tf32 fwd+bwd | "
        "speed-up fwd+bwd (toeplitz, tf32) | difference (toeplitz, tf32) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def speedup(r, path):  # path's ratio, or the error that took its place
        key = f"{path}_speedup"
        return f"{r[key]:.2f}×" if key in r else r.get(f"{path}_error", "—")

    for r in report["rows"]:
        fwd, both = (
            " | ".join(timed_cell(r, path, what) for path in ("fft", "toeplitz", "toeplitz_tf32"))
            for what in ("forward", "forward_backward")
        )
        lines.append(
            f"| {r['N']} | {r['d']} | {fwd} | {both} | {speedup(r, 'toeplitz')}, {speedup(r, 'toeplitz_tf32')} | "
            f"{r['toeplitz_relative_difference']:.1e}, {r['toeplitz_tf32_relative_difference']:.1e} |"
        )
    (out_dir / "causal_conv.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = kernel_benchmark_parser(__doc__, repeats=20)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    report = {"env": environment(device), "command": "python benchmarks/causal_conv.py " + " ".join(argv)}
    report |= {"repeats": args.repeats, "rows": []}
    for n in LENGTHS:
        for d in WIDTHS:
            report["rows"].append(measure(n, d, device, args.repeats))
            print(json.dumps(report["rows"][-1]), flush=True)
            write(report, Path(args.out_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
