"""How far Mamba's selective scan lands from float64 in float32, by its three forms: the chunked torch scan
(``families.mamba.selective_scan``), the log-depth scan in plain torch (``kernels.selective_scan.log_depth_scan``, the
fused kernels' association) and, where they run (CUDA, triton), the fused Triton kernels.

For each shape ``(R, B, N, d_i, n)`` of the kernels' GPU test, inputs as that test draws them (``Δ ∈ [0, 0.5)``,
``A ∈ (−3, 0]``, the rest standard normal), the float64 chunked scan is the reference; each form's ``y`` and the
gradients of all five inputs for one random cotangent are measured by ``scaled_error`` (largest error over the
reference's largest magnitude) and ``relative_rms_error`` (:mod:`mqarkit.tolerances`). This is the figure the kernels'
test rests on: a float32 form is held to no more than twice the error of its naive form in float32.

    python benchmarks/scan_rounding.py [--device cpu|cuda] [--out-dir docs/results]

Writes ``scan_rounding.json`` and ``scan_rounding.md`` under ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from mqarkit.gpu.frontier.families.mamba import selective_scan
from mqarkit.gpu.frontier.kernels.selective_scan import fused_scan_available, fused_selective_scan, log_depth_scan
from mqarkit.gpu.frontier.runner import environment, environment_line
from mqarkit.tolerances import relative_rms_error, scaled_error

SHAPES = ((4, 8, 256, 128, 24), (2, 2, 1024, 128, 16), (1, 2, 2048, 3, 2), (3, 4, 77, 40, 5))  # (R, B, N, d_i, n)
NAMES = ("y", "dx", "ddt", "da", "db", "dc")


def scan_inputs(shape: tuple[int, ...], device: torch.device, seed: int = 0) -> tuple[torch.Tensor, ...]:
    r, bsz, n, di, ns = shape
    g = torch.Generator().manual_seed(seed)
    x, dt = torch.randn(r, bsz, n, di, generator=g), torch.rand(r, bsz, n, di, generator=g) * 0.5
    a = -torch.rand(r, di, ns, generator=g) * 3
    b, c = torch.randn(r, bsz, n, ns, generator=g), torch.randn(r, bsz, n, ns, generator=g)
    return tuple(t.to(device) for t in (x, dt, a, b, c))


def outputs(scan, inputs: tuple[torch.Tensor, ...], dy: torch.Tensor) -> list[torch.Tensor]:
    """``y`` and the gradients of the five inputs for the cotangent ``dy`` (zeros where an input is unused)."""
    leaves = tuple(t.detach().requires_grad_() for t in inputs)
    y = scan(*leaves)
    return [y.detach(), *torch.autograd.grad(y, leaves, dy, materialize_grads=True)]


def measure(shape: tuple[int, ...], device: torch.device) -> dict:
    inputs = scan_inputs(shape, device)
    dy = torch.randn(shape[:4], generator=torch.Generator().manual_seed(1)).to(device)
    forms = {"chunked": lambda *xs: selective_scan(*xs)[0], "log_depth": log_depth_scan}
    if fused_scan_available(device, torch.float32, shape[2]):
        forms["fused"] = fused_selective_scan
    exact = outputs(forms["chunked"], tuple(t.double() for t in inputs), dy.double())
    row = {"shape": list(shape)}
    for form, scan in forms.items():
        got = outputs(scan, inputs, dy)
        row[form] = {
            name: {"scaled": scaled_error(u, e), "rms": relative_rms_error(u, e)}
            for name, u, e in zip(NAMES, got, exact)
        }
    return row


def write(report: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "scan_rounding.json").write_text(json.dumps(report, indent=2) + "\n")
    forms = [f for f in ("chunked", "log_depth", "fused") if any(f in r for r in report["rows"])]
    lines = [
        "# Mamba's selective scan in float32: each form's distance from float64",
        "",
        environment_line(report),
        "",
        "Largest error over the float64 reference's largest magnitude (`scaled_error`), per output; forms: "
        + ", ".join(forms)
        + ".",
        "",
        "| (R, B, N, d_i, n) | output | " + " | ".join(forms) + " |",
        "|---|---|" + "---|" * len(forms),
    ]
    for r in report["rows"]:
        for name in NAMES:
            cells = [f"{r[f][name]['scaled']:.2e}" if f in r else "—" for f in forms]
            lines.append(f"| {tuple(r['shape'])} | {name} | " + " | ".join(cells) + " |")
    (out_dir / "scan_rounding.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--out-dir", default="docs/results")
    ap.add_argument("--shapes", type=int, default=len(SHAPES), help="measure the first this many shapes")
    args = ap.parse_args(argv)
    if not 1 <= args.shapes <= len(SHAPES):
        ap.error(f"--shapes={args.shapes}: must be between 1 and {len(SHAPES)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device=cuda: no CUDA GPU here")
    device = torch.device(args.device)
    command = " ".join(["python benchmarks/scan_rounding.py", *argv])
    report = {"env": environment(device), "command": command, "rows": []}
    for shape in SHAPES[: args.shapes]:
        report["rows"].append(measure(shape, device))
        print(json.dumps(report["rows"][-1]), flush=True)
        write(report, Path(args.out_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
