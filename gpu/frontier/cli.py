"""``mqarkit frontier``: list the presets and families, or run a sweep into a JSONL results file (resumable).

mqarkit frontier list
mqarkit frontier run (--preset NAME | --sweep FILE.toml) --out RESULTS.jsonl [--device cpu|cuda|cuda:1]
    [--epochs 8] [--lrs 1e-3 1e-2] [--families based attention] [--d-models 64 128] [--example-scale 0.5]
    [--seeds 0 1 2] [--data-seed 0] [--dry-run] [--devices cuda:0 cuda:1 | --ray --ray-tasks 8 [--ray-address auto]]
"""

from __future__ import annotations

import json
import time

from mqarkit.cli import CommandParser, reports_usage_errors
from mqarkit.errors import usage_errors
from mqarkit.gpu.frontier.families import FAMILIES
from mqarkit.gpu.frontier.presets import get_preset, preset_names, reduce
from mqarkit.gpu.frontier.records import RecordsStore
from mqarkit.gpu.frontier.sweep import sweep_summary
from mqarkit.gpu.frontier.sweep_file import load_sweep_file


def build_parser() -> CommandParser:
    parser = CommandParser(
        prog="mqarkit frontier",
        description=__doc__.split("\n\n")[0],
        epilog=f"presets: {', '.join(preset_names())}; families: {', '.join(FAMILIES)} (or 'package.module:Class')",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="print the presets (their sweeps, runs and stacks) and the registered families")
    run = sub.add_parser("run", help="run a preset or a sweep file (skips the runs already in --out)")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", choices=preset_names(), help="a sweep shipped with the package")
    source.add_argument("--sweep", metavar="FILE.toml", help="a sweep file (see docs/mixer_protocol.md)")
    run.add_argument("--out", required=True, help="JSONL results file; finished runs in it are skipped")
    run.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    run.add_argument(
        "--devices", nargs="+", default=None, help="one worker process per entry (repeat a device to share it)"
    )
    run.add_argument("--ray", action="store_true", help="run through Ray (optional extra)")
    run.add_argument("--ray-tasks", type=int, default=1, help="number of Ray tasks (groups are dealt among them)")
    run.add_argument("--ray-address", default=None, help="address of a running Ray cluster (default: a local one)")
    run.add_argument("--epochs", type=int, default=None, help="train this many epochs instead (recorded in notes)")
    run.add_argument("--lrs", type=float, nargs="+", default=None, help="these learning rates instead")
    run.add_argument("--families", nargs="+", default=None, help="only the models of these families")
    run.add_argument("--d-models", type=int, nargs="+", default=None, help="only the models of these widths")
    run.add_argument("--example-scale", type=float, default=1.0, help="scale every segment's number of examples")
    run.add_argument("--seeds", type=int, nargs="+", default=None, help="these seeds (one run per seed) instead")
    run.add_argument("--data-seed", type=int, default=None, help="the seed of the data instead")
    run.add_argument("--dry-run", action="store_true", help="validate and print the plan only")
    return parser


@reports_usage_errors("mqarkit frontier")
def main(argv: list[str] | None = None) -> int:
    started = time.time()  # the log's stamps count from here (after the CLI's own imports)
    args = build_parser().parse_args(argv)
    if args.action == "list":
        for name in preset_names():
            for s in sweep_summary(get_preset(name)):
                print(f"{name}: sweep {s['name']}: {s['runs']} runs in {s['groups']} stacks, {s['epochs']} epochs")
        print(f"families: {', '.join(FAMILIES)}")
        return 0
    with usage_errors():  # every rule of the sweep and the output, before any device work: one line, exit 2
        sweeps = get_preset(args.preset) if args.preset else load_sweep_file(args.sweep)
        sweeps = reduce(
            sweeps,
            epochs=args.epochs,
            lrs=tuple(args.lrs) if args.lrs else None,
            families=tuple(args.families) if args.families else None,
            d_models=tuple(args.d_models) if args.d_models else None,
            example_scale=args.example_scale,
            seeds=tuple(args.seeds) if args.seeds else None,
            data_seed=args.data_seed,
        )
        if args.ray and args.devices:
            raise ValueError("--ray, --devices: give one of them")
        if args.ray_tasks < 1:
            raise ValueError(f"--ray-tasks={args.ray_tasks}: needs at least 1")
        if not args.dry_run:
            RecordsStore(args.out).check_writable()
    if args.dry_run:
        print(json.dumps(sweep_summary(sweeps), indent=1))
        return 0
    if args.ray:
        from mqarkit.gpu.frontier.launchers import run_ray

        n = run_ray(sweeps, args.out, num_tasks=args.ray_tasks, address=args.ray_address)
    elif args.devices:
        from mqarkit.gpu.frontier.launchers import run_multiprocess

        n = run_multiprocess(sweeps, args.out, args.devices, started=started)
    else:
        import torch

        from mqarkit.gpu.frontier.runner import elapsed_log, run_sweeps

        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        n = run_sweeps(sweeps, args.out, device, log=elapsed_log(started))
    print(f"recorded {n} runs in {args.out} ({time.time() - started:.1f} s)")
    return 0
