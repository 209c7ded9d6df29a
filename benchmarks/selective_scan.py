"""Mamba's selective scan four ways: the fused Triton kernels (over every state index, and skipping each run's
padding) and the sequential trial kernels against the chunked torch scan, forward and forward+backward, at the [B]
Fig. 2 Mamba stacks' shapes.

Usage: ``python benchmarks/selective_scan.py [--out-dir docs/results] [--repeats 10] [--batch 32] [--paths fused
skipping sequential torch] [--backward-launches 1024x4 ...] [--sequential-launches 256x1x8 ...]``; writes
``selective_scan.json`` and ``selective_scan.md`` under ``--out-dir``. Needs a CUDA GPU and triton.

Shapes: a stack of ``R = 12`` runs (the ``d_state`` values 8, 16, 24 cycled over the runs, × four learning rates, padded
to ``n = 24``: ``B`` and ``C`` zero beyond each run's own, as the family's masked projections make them), batch
``--batch``, ``d ∈ {64, 128, 256}`` (``d_i = 2d``) at the training lengths ``N ∈ {64, 128, 256}``. The paths are
:mod:`mqarkit.gpu.frontier` functions as the Mamba family calls them, in float32: ``fused_selective_scan`` over all 24
state indices (``fused``), the same skipping each run's padding as the family now calls it (``skipping``: its
``states``), ``sequential_selective_scan`` with the same ``states`` (``sequential``: one position at a time, every state
index in one program; the family takes it under ``MQARKIT_SCAN=sequential``), and ``selective_scan``, the torch scan
(``torch``); ``--paths`` times some of them (the torch scan at the harness's batch 256 takes seconds a call). Each
figure is the median of ``--repeats`` timed calls after warm-up (CUDA events; :mod:`mqarkit.gpu.timing`);
forward+backward takes the gradients of all five inputs. Before timing, the outputs are compared (largest difference
over the largest magnitude; the sequential kernels' against the skipping path's). A combination that runs out of memory
is recorded as such (the torch scan forms ``R·B·N·d_i·n`` states; the harness micro-batches it, this benchmark does
not).

``--backward-launches TILExWARPS ...``: the skipping path again with its backward kernel launched otherwise
(:class:`~mqarkit.gpu.frontier.kernels.selective_scan.Launch`: elements per program's tile, warps per program),
forward+backward timed the same way beside the default launch's, with the largest difference of its five gradients
from the default launch's (over each gradient's largest magnitude): which launch the backward, about six times the
forward on an H100, should take is a measurement. ``--sequential-launches TILExWARPSxSTATES ...``: the same for the
sequential kernels (entries of a program's state block, warps, state indices a block; both kernels), beside their
default launch.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from mqarkit.gpu.frontier.families.mamba import selective_scan
from mqarkit.gpu.frontier.kernels.selective_scan import BACKWARD, Launch, fused_scan_available, fused_selective_scan
from mqarkit.gpu.frontier.kernels.sequential_scan import (
    NARROW_LAUNCH,
    STATE_BLOCK,
    WIDE_CHANNELS,
    WIDE_LAUNCH,
    block_shape,
    sequential_selective_scan,
)
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
        "sequential": lambda *xs: sequential_selective_scan(*xs, states),
        "torch": lambda *xs: selective_scan(*xs)[0],
    }


# The sequential kernels' default launch, by the scan's channels d_i (kernels/sequential_scan.py: default_launch)
DEFAULT_SEQUENTIAL = f"{NARROW_LAUNCH}x{STATE_BLOCK} below d_i = {WIDE_CHANNELS}, {WIDE_LAUNCH}x{STATE_BLOCK} from it"
PATHS = ("fused", "skipping", "sequential", "torch")  # the order of paths() and of --paths' default


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


def parse_sequential_launch(text: str) -> tuple[Launch, int]:
    """``"TILExWARPSxSTATES"`` -> the sequential kernels' :class:`Launch` and state indices a block (a ``ValueError``
    naming the rule otherwise)."""
    launch, sep, states = text.rpartition("x")
    if not (sep and launch.count("x") == 1 and states.isdigit()):
        raise ValueError(f"{text!r}: must be TILExWARPSxSTATES, e.g. 256x2x8")
    block_shape(STATE, 256, int(states))  # the state block's rule
    return parse_launch(launch), int(states)


def backward_launch_scans(device: torch.device, launches: list[Launch]) -> dict[str, Callable]:
    """The skipping path under each backward launch, by the launch's name."""
    states = run_states(device)
    return {str(x): partial(fused_selective_scan, states=states, backward_launch=x) for x in launches}


def sequential_launch_scans(device: torch.device, launches: list[tuple[Launch, int]]) -> dict[str, Callable]:
    """The sequential path under each launch and state block, by ``TILExWARPSxSTATES``."""
    states = run_states(device)
    return {
        f"{x}x{block}": partial(sequential_selective_scan, states=states, launch=x, state_block=block)
        for x, block in launches
    }


def measure_launches(
    xs: tuple[torch.Tensor, ...],
    dy: torch.Tensor,
    scans: dict[str, Callable],
    default: Callable,
    device: torch.device,
    repeats: int,
) -> dict[str, dict[str, object]]:
    """Each of ``scans``' forward+backward, and its gradients' largest difference from ``default``'s (the path under
    its default launch; over each gradient's largest magnitude)."""
    reference = torch.autograd.grad(default(*xs), xs, dy)
    out: dict[str, dict[str, object]] = {}
    for name, scan in scans.items():
        grads = torch.autograd.grad(scan(*xs), xs, dy)
        timed = forward_and_backward_ms(scan, xs, dy, repeats=repeats, device=device)
        out[name] = timed | {"gradient_difference": max(map(_difference, grads, reference))}
    return out


def measure(
    batch: int,
    n: int,
    d: int,
    device: torch.device,
    repeats: int,
    launches: list[Launch] = (),
    timed_paths: tuple[str, ...] = PATHS,
    sequential_launches: list[tuple[Launch, int]] = (),
) -> dict[str, object]:
    xs = inputs(batch, n, d, device)
    scans = paths(device)
    row: dict[str, object] = {"N": n, "d": d, "d_i": 2 * d, "skipping_difference": None, "relative_difference": None}
    row["sequential_difference"] = None
    try:  # outputs compared before timing: max |output − reference| over max |reference|
        with torch.no_grad():
            fused, skipping = scans["fused"](*xs), scans["skipping"](*xs)
            row["skipping_difference"] = _difference(skipping, fused)
            row["sequential_difference"] = _difference(scans["sequential"](*xs), skipping)
            if "torch" in timed_paths:
                row["relative_difference"] = _difference(fused, scans["torch"](*xs))
        del fused, skipping
    except torch.OutOfMemoryError as err:
        row["compare_error"] = f"out of memory: {str(err).splitlines()[0]}"
    dy = torch.randn(RUNS, batch, n, 2 * d, device=device)
    for name in timed_paths:
        timed = forward_and_backward_ms(scans[name], xs, dy, repeats=repeats, device=device)
        row |= {f"{name}_{key}": value for key, value in timed.items()}
    ratios = (("speedup", "torch", "fused"), ("skipping_gain", "fused", "skipping"))
    for key, slower, faster in ratios + (("sequential_gain", "skipping", "sequential"),):
        if f"{slower}_forward_backward_ms" in row and f"{faster}_forward_backward_ms" in row:
            row[key] = row[f"{slower}_forward_backward_ms"] / row[f"{faster}_forward_backward_ms"]
    if launches:
        scans_by_launch = backward_launch_scans(device, list(launches))
        row["backward_launches"] = measure_launches(xs, dy, scans_by_launch, scans["skipping"], device, repeats)
    if sequential_launches:
        scans_by_launch = sequential_launch_scans(device, list(sequential_launches))
        row["sequential_launches"] = measure_launches(xs, dy, scans_by_launch, scans["sequential"], device, repeats)
    return row


def write(report: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "selective_scan.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Mamba's selective scan: fused and sequential Triton kernels against the torch scan",
        "",
        environment_line(report),
        "",
        f"Stack of {RUNS} runs, batch {report['batch']}, n = {STATE} (each run's own d_state "
        f"{'/'.join(map(str, STACK_STATES))} cycled, the rest padding), float32; median of {report['repeats']} calls "
        "after warm-up (CUDA events), in ms. Difference: max |fused − torch| over max |torch| (forward). Skipping: "
        "the fused kernels over each run's own state indices only (max |skipping − fused| over max |fused|). "
        "Sequential: the trial kernels of kernels/sequential_scan.py with the skipping path's states; gain over the "
        "skipping path, and max |sequential − skipping| over max |skipping|.",
        "",
        "| N | d (d_i) | fused fwd | torch fwd | fused fwd+bwd | torch fwd+bwd | speed-up fwd+bwd | difference "
        "| skipping fwd+bwd | gain | skipping difference | sequential fwd | sequential fwd+bwd | sequential gain "
        "| sequential difference |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    cell = partial(timed_cell, fmt="{:.2f}")

    for r in report["rows"]:
        speed = f"{r['speedup']:.1f}×" if "speedup" in r else "—"
        diff = "—" if r["relative_difference"] is None else f"{r['relative_difference']:.1e}"
        gain = f"{r['skipping_gain']:.2f}×" if "skipping_gain" in r else "—"
        skip_diff = "—" if r["skipping_difference"] is None else f"{r['skipping_difference']:.1e}"
        seq_gain = f"{r['sequential_gain']:.2f}×" if "sequential_gain" in r else "—"
        seq_diff = "—" if r.get("sequential_difference") is None else f"{r['sequential_difference']:.1e}"
        lines.append(
            f"| {r['N']} | {r['d']} ({r['d_i']}) | {cell(r, 'fused', 'forward')} | {cell(r, 'torch', 'forward')} | "
            f"{cell(r, 'fused', 'forward_backward')} | {cell(r, 'torch', 'forward_backward')} | {speed} | {diff} | "
            f"{cell(r, 'skipping', 'forward_backward')} | {gain} | {skip_diff} | {cell(r, 'sequential', 'forward')} | "
            f"{cell(r, 'sequential', 'forward_backward')} | {seq_gain} | {seq_diff} |"
        )
    lines += launch_table(report)
    (out_dir / "selective_scan.md").write_text("\n".join(lines) + "\n")


# The launch sections: (report key of the launches asked for, of the default when measured, the path timed under the
# default, the heading's words)
LAUNCH_SECTIONS = (
    ("backward_launches", "default_backward_launch", "skipping", "Backward launches (tile elements x warps"),
    (
        "sequential_launches",
        "default_sequential_launch",
        "sequential",
        "Sequential launches (state-block entries x warps x state indices a block",
    ),
)


def launch_table(report: dict) -> list[str]:
    """The ``--backward-launches`` and ``--sequential-launches`` sections: each launch's forward+backward beside the
    default's (ms) and its gradients' difference from the default's; nothing for a kind none was asked for."""
    lines = []
    for key, default_key, path, heading in LAUNCH_SECTIONS:
        launches = report.get(key) or []
        if not launches:
            continue
        default_launch = report[default_key]  # the default when measured, not today's
        lines += [
            "",
            f"{heading}; the default is {default_launch}): the {path} path's forward+backward in ms, and in brackets "
            "the largest difference of its gradients from the default launch's.",
            "",
            f"| N | d (d_i) | {default_launch} (default) | " + " | ".join(launches) + " |",
            "|---|---|---|" + "---|" * len(launches),
        ]
        for r in report["rows"]:
            timed = r.get(key, {})
            cells = []
            for name in launches:
                t = timed.get(name, {})
                ms = t.get("forward_backward_ms")
                cells.append(t.get("error", "—") if ms is None else f"{ms:.2f} ({t['gradient_difference']:.0e})")
            default = r.get(f"{path}_forward_backward_ms")
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
    ap.add_argument(
        "--sequential-launches",
        nargs="+",
        default=[],
        metavar="TILExWARPSxSTATES",
        help="also time the sequential kernels launched so (state-block entries x warps x state indices a block; "
        f"default {DEFAULT_SEQUENTIAL})",
    )
    ap.add_argument(
        "--paths",
        nargs="+",
        choices=PATHS,
        default=list(PATHS),
        help="the paths timed (default: all; the outputs are compared whichever are timed, the torch scan's only "
        "when it is timed)",
    )
    args = ap.parse_args(argv)
    launches = {}
    for flag, parse in (("backward_launches", parse_launch), ("sequential_launches", parse_sequential_launch)):
        try:
            launches[flag] = [parse(text) for text in getattr(args, flag)]
        except ValueError as err:
            ap.error(f"--{flag.replace('_', '-')}: {err}")
    if not torch.cuda.is_available():
        ap.error("needs a CUDA GPU (the fused kernels run there)")
    device = torch.device("cuda")
    if not fused_scan_available(device, torch.float32, max(LENGTHS)):
        ap.error("the fused scan is not available here (triton missing, or MQARKIT_FUSED_SCAN=0)")
    report = {"env": environment(device), "command": "python benchmarks/selective_scan.py " + " ".join(argv)}
    report |= {"repeats": args.repeats, "batch": args.batch}
    report["backward_launches"] = [str(x) for x in launches["backward_launches"]]
    report["sequential_launches"] = [f"{x}x{block}" for x, block in launches["sequential_launches"]]
    report["paths"] = [name for name in PATHS if name in args.paths]
    report["default_backward_launch"] = str(BACKWARD)
    report["default_sequential_launch"] = DEFAULT_SEQUENTIAL
    report["rows"] = []
    for d in WIDTHS:
        for n in LENGTHS:
            row = measure(
                args.batch,
                n,
                d,
                device,
                args.repeats,
                launches["backward_launches"],
                tuple(report["paths"]),
                launches["sequential_launches"],
            )
            report["rows"].append(row)
            print(json.dumps(report["rows"][-1]), flush=True)
            write(report, Path(args.out_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
