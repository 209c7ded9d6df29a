"""Mamba's selective scan three ways: the fused Triton kernels (over every state index, and skipping each run's
padding) against the chunked torch scan, forward and forward+backward, at the [B] Fig. 2 Mamba stacks' shapes.

Usage: ``python benchmarks/selective_scan.py [--out-dir docs/results] [--repeats 10] [--batch 32]
[--backward-launches 1024x4 ...]``; writes ``selective_scan.json`` and ``selective_scan.md`` under ``--out-dir``.
Needs a CUDA GPU and triton.

Shapes: a stack of ``R = 12`` runs (the ``d_state`` values 8, 16, 24 cycled over the runs, × four learning rates, padded
to ``n = 24``: ``B`` and ``C`` zero beyond each run's own, as the family's masked projections make them), batch
``--batch``, ``d ∈ {64, 128, 256}`` (``d_i = 2d``) at the training lengths ``N ∈ {64, 128, 256}``. The paths are
:mod:`mqarkit.gpu.frontier` functions as the Mamba family calls them, in float32: ``fused_selective_scan`` over all 24
state indices (``fused``), the same skipping each run's padding as the family now calls it (``skipping``: its
``states``), and ``selective_scan``, the torch scan (``torch``). Each figure is the median of ``--repeats`` timed calls
after warm-up (CUDA events; :mod:`mqarkit.gpu.timing`); forward+backward takes the gradients of all five inputs. Before
timing, the outputs are compared (largest difference over the largest magnitude). A combination that runs out of memory
is recorded as such (the torch scan forms ``R·B·N·d_i·n`` states; the harness micro-batches it, this benchmark does
not).

``--backward-launches TILExWARPS ...``: the skipping path again with its backward kernel launched otherwise
(:class:`~mqarkit.gpu.frontier.kernels.selective_scan.Launch`: elements per program's tile, warps per program),
forward+backward timed the same way beside the default launch's, with the largest difference of its five gradients
from the default launch's (over each gradient's largest magnitude): which launch the backward, about six times the
forward on an H100, should take is a measurement.
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import torch

from mqarkit.gpu.frontier.families.mamba import selective_scan
from mqarkit.gpu.frontier.kernels.selective_scan import BACKWARD, Launch, fused_scan_available, fused_selective_scan
from mqarkit.gpu.frontier.runner import environment, environment_line
from mqarkit.gpu.timing import forward_and_backward_ms, kernel_benchmark_parser, positive_int, timed_cell

RUNS, STATE = 12, 24
STACK_STATES = (8, 16, 24)  # the [B] Fig. 2 Mamba stacks' d_state values, cycled over the runs
LENGTHS, WIDTHS = (64, 128, 256), (64, 128, 256)


def run_states(device: torch.device) -> torch.Tensor:
    """Each run's own ``d_state``, ``(R,)``."""
    return torch.tensor([STACK_STATES[r % len(STACK_STATES)] for r in range(RUNS)], device=device)


def paths(device: torch.device) -> dict:
    """The timed scans, by name (``states`` made once, outside the timing)."""
    states = run_states(device)
    return {
        "fused": fused_selective_scan,
        "skipping": lambda *xs: fused_selective_scan(*xs, states),
        "torch": lambda *xs: selective_scan(*xs)[0],
    }


def inputs(batch: int, n: int, d: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    g = torch.Generator(device=device).manual_seed(n * 1000 + d)
    di = 2 * d
    shape = (RUNS, batch, n, di)
    x = torch.randn(shape, device=device, generator=g)
    dt = torch.rand(shape, device=device, generator=g) * 0.1
    a = -torch.arange(1, STATE + 1, device=device, dtype=torch.float32).expand(RUNS, di, STATE).contiguous()
    own = (torch.arange(STATE, device=device) < run_states(device)[:, None])[:, None, None, :]  # (R, 1, 1, n)
    b = torch.randn(RUNS, batch, n, STATE, device=device, generator=g) * own
    c = torch.randn(RUNS, batch, n, STATE, device=device, generator=g) * own
    return tuple(t.requires_grad_() for t in (x, dt, a, b, c))


def _difference(output: torch.Tensor, reference: torch.Tensor) -> float:
    return ((output - reference).abs().max() / reference.abs().max()).item()


def parse_launch(text: str) -> Launch:
    """``"TILExWARPS"`` -> :class:`Launch` (a ``ValueError`` naming the rule otherwise)."""
    tile, sep, warps = text.partition("x")
    if not (sep and tile.isdigit() and warps.isdigit()):
        raise ValueError(f"{text!r}: must be TILExWARPS, e.g. 1024x4")
    return Launch(int(tile), int(warps))


def measure_launches(
    xs: tuple[torch.Tensor, ...], dy: torch.Tensor, launches: list[Launch], device: torch.device, repeats: int
) -> dict[str, dict[str, object]]:
    """The skipping path's forward+backward under each backward launch, and its gradients' largest difference from the
    default launch's (over each gradient's largest magnitude)."""
    states = run_states(device)
    default = torch.autograd.grad(fused_selective_scan(*xs, states), xs, dy)
    out: dict[str, dict[str, object]] = {}
    for launch in launches:
        scan = lambda *ts, launch=launch: fused_selective_scan(*ts, states, launch)  # noqa: E731
        grads = torch.autograd.grad(scan(*xs), xs, dy)
        timed = forward_and_backward_ms(scan, xs, dy, repeats=repeats, device=device)
        out[str(launch)] = timed | {"gradient_difference": max(map(_difference, grads, default))}
    return out


def measure(
    batch: int, n: int, d: int, device: torch.device, repeats: int, launches: list[Launch] = ()
) -> dict[str, object]:
    xs = inputs(batch, n, d, device)
    scans = paths(device)
    row: dict[str, object] = {"N": n, "d": d, "d_i": 2 * d, "skipping_difference": None, "relative_difference": None}
    try:  # outputs compared before timing: max |output − reference| over max |reference|
        with torch.no_grad():
            fused = scans["fused"](*xs)
            row["skipping_difference"] = _difference(scans["skipping"](*xs), fused)
            row["relative_difference"] = _difference(fused, scans["torch"](*xs))
        del fused
    except torch.OutOfMemoryError as err:
        row["compare_error"] = f"out of memory: {str(err).splitlines()[0]}"
    dy = torch.randn(RUNS, batch, n, 2 * d, device=device)
    for name, scan in scans.items():
        timed = forward_and_backward_ms(scan, xs, dy, repeats=repeats, device=device)
        row |= {f"{name}_{key}": value for key, value in timed.items()}
    if "fused_forward_backward_ms" in row and "torch_forward_backward_ms" in row:
        row["speedup"] = row["torch_forward_backward_ms"] / row["fused_forward_backward_ms"]
    if "fused_forward_backward_ms" in row and "skipping_forward_backward_ms" in row:
        row["skipping_gain"] = row["fused_forward_backward_ms"] / row["skipping_forward_backward_ms"]
    if launches:
        row["backward_launches"] = measure_launches(xs, dy, list(launches), device, repeats)
    return row


def write(report: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "selective_scan.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Mamba's selective scan: fused Triton kernels against the torch scan",
        "",
        environment_line(report),
        "",
        f"Stack of {RUNS} runs, batch {report['batch']}, n = {STATE} (each run's own d_state "
        f"{'/'.join(map(str, STACK_STATES))} cycled, the rest padding), float32; median of {report['repeats']} calls "
        "after warm-up (CUDA events), in ms. Difference: max |fused − torch| over max |torch| (forward). Skipping: "
        "the fused kernels over each run's own state indices only (max |skipping − fused| over max |fused|).",
        "",
        "| N | d (d_i) | fused fwd | torch fwd | fused fwd+bwd | torch fwd+bwd | speed-up fwd+bwd | difference "
        "| skipping fwd+bwd | gain | skipping difference |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    cell = partial(timed_cell, fmt="{:.2f}")

    for r in report["rows"]:
        speed = f"{r['speedup']:.1f}×" if "speedup" in r else "—"
        diff = "—" if r["relative_difference"] is None else f"{r['relative_difference']:.1e}"
        gain = f"{r['skipping_gain']:.2f}×" if "skipping_gain" in r else "—"
        skip_diff = "—" if r["skipping_difference"] is None else f"{r['skipping_difference']:.1e}"
        lines.append(
            f"| {r['N']} | {r['d']} ({r['d_i']}) | {cell(r, 'fused', 'forward')} | {cell(r, 'torch', 'forward')} | "
            f"{cell(r, 'fused', 'forward_backward')} | {cell(r, 'torch', 'forward_backward')} | {speed} | {diff} | "
            f"{cell(r, 'skipping', 'forward_backward')} | {gain} | {skip_diff} |"
        )
    lines += launch_table(report)
    (out_dir / "selective_scan.md").write_text("\n".join(lines) + "\n")


def launch_table(report: dict) -> list[str]:
    """The ``--backward-launches`` section: each launch's skipping forward+backward beside the default's (ms) and
    its gradients' difference from the default's; nothing if none was asked for."""
    launches = report.get("backward_launches") or []
    if not launches:
        return []
    default_launch = report["default_backward_launch"]  # the default when measured, not today's
    lines = [
        "",
        f"Backward launches (tile elements x warps; the default is {default_launch}): the skipping path's "
        "forward+backward in ms, and in brackets the largest difference of its gradients from the default launch's.",
        "",
        f"| N | d (d_i) | {default_launch} (default) | " + " | ".join(launches) + " |",
        "|---|---|---|" + "---|" * len(launches),
    ]
    for r in report["rows"]:
        timed = r.get("backward_launches", {})
        cells = []
        for name in launches:
            t = timed.get(name, {})
            ms = t.get("forward_backward_ms")
            cells.append(t.get("error", "—") if ms is None else f"{ms:.2f} ({t['gradient_difference']:.0e})")
        default = r.get("skipping_forward_backward_ms")
        default = "—" if default is None else f"{default:.2f}"
        lines.append(f"| {r['N']} | {r['d']} ({r['d_i']}) | {default} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = kernel_benchmark_parser(__doc__, repeats=10, device=False)
    ap.add_argument(
        "--batch", type=positive_int, default=32, help="examples per run (the harness uses 256, micro-batched)"
    )
    ap.add_argument(
        "--backward-launches",
        nargs="+",
        default=[],
        metavar="TILExWARPS",
        help=f"also time the backward kernel launched so (default launch {BACKWARD})",
    )
    args = ap.parse_args(argv)
    try:
        launches = [parse_launch(text) for text in args.backward_launches]
    except ValueError as err:
        ap.error(f"--backward-launches: {err}")
    if not torch.cuda.is_available():
        ap.error("needs a CUDA GPU (the fused kernels run there)")
    device = torch.device("cuda")
    if not fused_scan_available(device, torch.float32, max(LENGTHS)):
        ap.error("the fused scan is not available here (triton missing, or MQARKIT_FUSED_SCAN=0)")
    report = {"env": environment(device), "command": "python benchmarks/selective_scan.py " + " ".join(argv)}
    report |= {"repeats": args.repeats, "batch": args.batch, "backward_launches": [str(x) for x in launches]}
    report["default_backward_launch"] = str(BACKWARD)
    report["rows"] = []
    for d in WIDTHS:
        for n in LENGTHS:
            report["rows"].append(measure(args.batch, n, d, device, args.repeats, launches))
            print(json.dumps(report["rows"][-1]), flush=True)
            write(report, Path(args.out_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
