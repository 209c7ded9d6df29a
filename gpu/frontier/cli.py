"""``mqarkit frontier``: list presets, or run a preset's sweep into a JSONL file (resumable).

mqarkit frontier list
mqarkit frontier run --preset based-fig2 --out docs/results/frontier.jsonl [--device cuda] [--epochs 8]
    [--lrs 1e-3 1e-2] [--families based attention] [--d-models 64 128] [--example-scale 0.5] [--seed 0]
    [--devices cuda:0 cuda:1 | --ray --ray-tasks 8 [--ray-address auto]]
"""

from __future__ import annotations

import argparse
import json
import time

from mqarkit.gpu.frontier.launchers import run_multiprocess, run_ray
from mqarkit.gpu.frontier.presets import PRESETS, get_preset
from mqarkit.gpu.frontier.runner import elapsed_log, run_sweeps
from mqarkit.gpu.frontier.sweep import sweep_summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mqarkit frontier", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="print the presets and their runs")
    run = sub.add_parser("run", help="run a preset (skips runs already in --out)")
    run.add_argument("--preset", required=True, choices=sorted(PRESETS))
    run.add_argument("--out", required=True, help="JSONL results file (appended atomically)")
    run.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    run.add_argument(
        "--devices", nargs="+", default=None, help="one worker process per entry (repeat a device to share it)"
    )
    run.add_argument("--ray", action="store_true", help="run through Ray (optional extra)")
    run.add_argument("--ray-tasks", type=int, default=1)
    run.add_argument("--ray-address", default=None)
    run.add_argument("--epochs", type=int, default=None)
    run.add_argument("--lrs", type=float, nargs="+", default=None)
    run.add_argument("--families", nargs="+", default=None)
    run.add_argument("--d-models", type=int, nargs="+", default=None, help="only these model widths")
    run.add_argument("--example-scale", type=float, default=1.0)
    run.add_argument("--seed", type=int, default=None)
    run.add_argument("--dry-run", action="store_true", help="validate and print the plan only")
    return parser


def main(argv: list[str]) -> int:
    started = time.time()  # the log's stamps count from here (after the CLI's own imports)
    args = build_parser().parse_args(argv)
    if args.action == "list":
        for name in sorted(PRESETS):
            for s in sweep_summary(get_preset(name)):
                print(f"{name}: sweep {s['name']}: {s['runs']} runs in {s['groups']} stacks, {s['epochs']} epochs")
        return 0
    kwargs = {
        "name": args.preset,
        "epochs": args.epochs,
        "lrs": tuple(args.lrs) if args.lrs else None,
        "families": tuple(args.families) if args.families else None,
        "d_models": tuple(args.d_models) if args.d_models else None,
        "example_scale": args.example_scale,
        "seed": args.seed,
    }
    sweeps = get_preset(**kwargs)  # every ValueError surfaces here, before any device work
    if args.dry_run:
        print(json.dumps(sweep_summary(sweeps), indent=1))
        return 0
    if args.ray:
        n = run_ray(kwargs, args.out, num_tasks=args.ray_tasks, address=args.ray_address)
    elif args.devices:
        n = run_multiprocess(kwargs, args.out, args.devices, started=started)
    else:
        import torch

        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        n = run_sweeps(sweeps, args.out, device, log=elapsed_log(started))
    print(f"recorded {n} runs in {args.out} ({time.time() - started:.1f} s)")
    return 0
