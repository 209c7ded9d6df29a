"""``mqarkit frontier``: list the presets and families, or run a sweep into a JSONL results file (resumable).

mqarkit frontier list
mqarkit frontier compare --paper based-fig2|zoology-fig2 --results RESULTS.jsonl [...] [--out COMPARISON.md]
    [--sweeps NAME ...]
mqarkit frontier run (--preset NAME | --sweep FILE.toml) --out RESULTS.jsonl [--device cpu|cuda|cuda:1]
    [--epochs 8] [--lrs 1e-3 1e-2] [--families based attention] [--d-models 64 128] [--example-scale 0.5]
    [--seeds 0 1 2] [--data-seed 0] [--max-stack-runs 4] [--dry-run] [--deterministic] [--no-progress]
    [--log tensorboard|wandb [--log-dir DIR]]
    [--devices cuda:0 cuda:1 | --ray [--gpus-per-task 1] [--ray-retries 2] [--ray-tasks N] [--ray-address auto]
    [--ray-runtime-env JSON]]

Exit status: 0 when every run is recorded, 1 when some Ray task failed after its retries or a stack ran out of device
memory (the other runs are recorded; a rerun trains the failed ones), 2 on a bad request (one line on stderr, before
any work).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

from mqarkit.cli import CommandParser, reports_usage_errors
from mqarkit.errors import usage_errors
from mqarkit.gpu.device import resolve_device
from mqarkit.gpu.frontier.determinism import prepare_environment
from mqarkit.gpu.frontier.families import FAMILIES
from mqarkit.gpu.frontier.presets import get_preset, preset_names, reduce
from mqarkit.gpu.frontier.projection import SKIP_UNPROJECTED_RULE, TimeBudget, project
from mqarkit.gpu.frontier.records import RecordsStore, done_run_ids
from mqarkit.gpu.frontier.sweep import runs_left, sweep_summary
from mqarkit.gpu.frontier.sweep_file import load_sweep_file
from mqarkit.gpu.frontier.tracking import TRACKER_PACKAGES, Tracking, default_log_dir
from mqarkit.outputs import check_output_file

RAY_ONLY = ("gpus_per_task", "ray_retries", "ray_tasks", "ray_address", "ray_runtime_env")  # flags that need --ray


def _epilog() -> str:
    return f"presets: {', '.join(preset_names())}; families: {', '.join(FAMILIES)} (or 'package.module:Class')"


def build_parser() -> CommandParser:
    parser = CommandParser(prog="mqarkit frontier", description=__doc__.split("\n\n")[0], epilog=_epilog())
    sub = parser.add_subparsers(dest="action", required=True, metavar="{list,run,compare,merge}")
    sub.add_parser(
        "list",
        help="print the presets (their sweeps, runs and stacks) and the registered families",
        description="Print each preset's sweeps (runs, stacks, epochs) and the registered families.",
        epilog=_epilog(),
    )
    run = sub.add_parser(
        "run",
        help="run a preset or a sweep file (skips the runs already in --out)",
        description="Train a preset or a sweep file into a JSONL results file; runs already recorded there are "
        "skipped, so an interrupted run resumes. A stack that runs out of device memory is split into halves, trained "
        "next, down to one run a stack. Exit status 1 if a Ray task failed after its retries or a run alone ran out "
        "of device memory (the other stacks are recorded).",
        epilog=_epilog(),
    )
    compare = sub.add_parser(
        "compare",
        help="set records against what a paper reports for its figure (Markdown tables with verdicts)",
        description="Set the records of a figure's preset against the values read off the paper's plot: per "
        "family or point a verdict (agrees, above, below) from the mean over seeds and its interval; for [B] Fig. 2 "
        "also the ordering on the front. The rules: mqarkit.gpu.frontier.compare.",
    )
    merge = sub.add_parser(
        "merge",
        help="add the records of other results files (other machines, resumed copies) to one results file",
        description="Append the records of each input to --into through the results store (locked, atomic; the "
        "first record of a run wins), and say per input what was written, what was already there and how much of "
        "that differs, and which lines are not records (left in the input). The rules: mqarkit.gpu.frontier.merge.",
    )
    merge.add_argument("--into", required=True, metavar="RESULTS.jsonl", help="the results file to add to")
    merge.add_argument("inputs", nargs="+", metavar="OTHER.jsonl", help="results files whose records to add")
    compare.add_argument("--paper", required=True, choices=("based-fig2", "zoology-fig2"), help="the figure")
    compare.add_argument("--results", nargs="+", required=True, metavar="RESULTS.jsonl", help="JSONL record files")
    compare.add_argument("--out", default=None, metavar="FILE.md", help="write the Markdown here (default: print it)")
    compare.add_argument(
        "--sweeps",
        nargs="+",
        default=None,
        metavar="NAME",
        help="the records' sweeps that train the figure (default: the preset's sweep names, e.g. based-fig2); for a "
        "sweep file of one's own with the paper's data under another name",
    )

    what = run.add_argument_group("what to run")
    source = what.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", choices=preset_names(), help="a sweep shipped with the package")
    source.add_argument("--sweep", metavar="FILE.toml", help="a sweep file (see docs/mixer_protocol.md)")
    what.add_argument(
        "--out", required=True, metavar="RESULTS.jsonl", help="JSONL results file; finished runs in it are skipped"
    )
    what.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and print the plan only (and, where --out exists, the runs planned and left per family and "
        "width)",
    )
    what.add_argument(
        "--speed-table",
        default=None,
        metavar="SPEED.json",
        help="with --dry-run: project the device time of the stacks left from this speed table "
        "(benchmarks/frontier_speed.py's frontier_speed_families.json; mqarkit.gpu.frontier.projection says how); "
        "with --time-budget-s: do not start a stack projected past the budget",
    )
    what.add_argument(
        "--time-budget-s",
        type=float,
        default=None,
        metavar="S",
        help="start no stack once S seconds have passed since the command started, nor (with --speed-table) one "
        "projected to need more than is left (its epochs and, where its row measured it, its compilation; "
        "mqarkit.gpu.frontier.projection.TimeBudget); the stacks not started stay to do. Not with --ray or --devices",
    )
    what.add_argument(
        "--skip-unprojected",
        action="store_true",
        help="with --time-budget-s and --speed-table: do not start a stack the table cannot project either "
        "(by default it starts while time is left)",
    )

    reductions = run.add_argument_group("reductions (each recorded in the runs' notes)")
    reductions.add_argument("--epochs", type=int, default=None, metavar="N", help="train this many epochs instead")
    reductions.add_argument(
        "--lrs", type=float, nargs="+", default=None, metavar="LR", help="these learning rates instead"
    )
    reductions.add_argument(
        "--families", nargs="+", default=None, metavar="FAMILY", help="only the models of these families"
    )
    reductions.add_argument(
        "--d-models", type=int, nargs="+", default=None, metavar="D", help="only the models of these widths"
    )
    reductions.add_argument(
        "--example-scale",
        type=float,
        default=1.0,
        metavar="S",
        help="scale every segment's number of examples (0 < s <= 1)",
    )
    reductions.add_argument(
        "--seeds", type=int, nargs="+", default=None, metavar="SEED", help="these seeds (one run per seed)"
    )
    reductions.add_argument(
        "--data-seed", type=int, default=None, metavar="SEED", help="the seed of the data and batch order"
    )

    where = run.add_argument_group("where to train (default: one process on --device)")
    where.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    where.add_argument(
        "--devices",
        nargs="+",
        default=None,
        metavar="DEVICE",
        help="one worker process per entry (repeat a device to share it)",
    )
    where.add_argument(
        "--max-stack-runs",
        type=int,
        default=None,
        metavar="N",
        help="train at most N runs as one stack (a group cut into stacks in the sweep's order; not a reduction: less "
        "device memory, shorter stacks, each resumable on its own)",
    )
    where.add_argument("--ray", action="store_true", help="one Ray task per stack (optional extra mqarkit[ray])")
    where.add_argument(
        "--gpus-per-task",
        type=float,
        default=None,
        metavar="N",
        help="GPUs each Ray task asks for (a fraction < 1 shares a GPU; 0: train on CPUs); default 1 if the "
        "cluster has GPUs, else 0",
    )
    where.add_argument(
        "--ray-retries", type=int, default=None, metavar="N", help="times a failed Ray task is run again (default 2)"
    )
    where.add_argument(
        "--ray-tasks",
        type=int,
        default=None,
        metavar="N",
        help="the most Ray tasks submitted at once (default: all stacks)",
    )
    where.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="a Ray cluster: auto, host:port, ray://host:10001 or local (default: $RAY_ADDRESS, else a cluster 'ray "
        "start' left on this machine, else a new local one)",
    )
    where.add_argument(
        "--ray-runtime-env",
        metavar="JSON",
        default=None,
        help='Ray runtime_env for the tasks, e.g. \'{"py_modules": ["my_mixers"]}\' (docs/results/multi_gpu.md)',
    )

    mode = run.add_argument_group("reproducibility")
    mode.add_argument(
        "--deterministic",
        action="store_true",
        help="bitwise the same records on a rerun on the same machine and versions: torch's deterministic "
        "algorithms (strict), CUBLAS_WORKSPACE_CONFIG=:4096:8, cuDNN deterministic; records say deterministic: "
        "true. Not with --ray. What it turns off, what stays unguaranteed (fla's autotuned kernels on a cold cache; "
        "other GPUs and versions) and its measured cost: docs/determinism.md",
    )

    watch = run.add_argument_group("watching")
    watch.add_argument(
        "--no-progress", action="store_true", help="no progress bar (it shows only when stderr is a terminal)"
    )
    watch.add_argument(
        "--log",
        choices=sorted(TRACKER_PACKAGES),
        default=None,
        help="record each run's loss and accuracies per epoch (optional extras mqarkit[tensorboard], mqarkit[wandb])",
    )
    watch.add_argument(
        "--log-dir", default=None, metavar="DIR", help="the tracker's folder (default: beside --out, RESULTS.logs)"
    )
    return parser


def _ray_options(args: argparse.Namespace) -> dict:
    """The Ray flags, checked (before any work), as :func:`~mqarkit.gpu.frontier.ray_launcher.run_ray` takes them."""
    from mqarkit.gpu.frontier import ray_launcher

    ray_launcher.check_gpus_per_task(args.gpus_per_task)
    retries = ray_launcher.DEFAULT_RETRIES if args.ray_retries is None else args.ray_retries
    if retries < 0:
        raise ValueError(f"--ray-retries={retries}: needs an integer >= 0")
    if args.ray_tasks is not None and args.ray_tasks < 1:
        raise ValueError(f"--ray-tasks={args.ray_tasks}: needs at least 1")
    runtime_env = None
    if args.ray_runtime_env is not None:
        try:
            runtime_env = json.loads(args.ray_runtime_env)
        except json.JSONDecodeError as err:
            raise ValueError(f"--ray-runtime-env: not JSON ({err})") from None
        if not isinstance(runtime_env, dict):
            raise ValueError(f"--ray-runtime-env={args.ray_runtime_env!r}: needs a JSON object")
        ray_launcher.check_runtime_env(runtime_env)
    return {
        "gpus_per_task": args.gpus_per_task,
        "retries": retries,
        "max_in_flight": args.ray_tasks,
        "address": args.ray_address,
        "runtime_env": runtime_env,
    }


@reports_usage_errors("mqarkit frontier")
def main(argv: list[str] | None = None) -> int:
    started = time.time()  # the log's stamps count from here (after the CLI's own imports)
    args = build_parser().parse_args(argv)
    if args.action == "list":
        for name in preset_names():
            for s in sweep_summary(get_preset(name)):
                layers = ", ".join(f"{n} {k}" for k, n in s["layers"].items())
                print(
                    f"{name}: sweep {s['name']}: {s['runs']} runs ({layers}) in {s['groups']} stacks, "
                    f"{s['epochs']} epochs"
                )
        print(f"families: {', '.join(FAMILIES)}")
        return 0
    if args.action == "compare":
        return _compare(args)
    if args.action == "merge":
        return _merge(args)
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
        if args.max_stack_runs is not None:  # the sweep's rule, checked here before any work
            sweeps = [replace(sw, max_stack_runs=args.max_stack_runs) for sw in sweeps]
            for sw in sweeps:
                sw.validate()
        if args.ray and args.devices:
            raise ValueError("--ray, --devices: give one of them")
        if not args.ray:
            given = [name for name in RAY_ONLY if getattr(args, name) is not None]
            if given:
                raise ValueError(f"--{given[0].replace('_', '-')}: only with --ray")
        if args.deterministic:
            if args.ray:
                raise ValueError(
                    "--deterministic: not with --ray (Ray reuses worker processes whose CUDA may have started without "
                    "the mode's environment); use one process or --devices"
                )
            prepare_environment()  # before any CUDA work here, and inherited by --devices workers
        if args.log_dir is not None and args.log is None:
            raise ValueError("--log-dir: only with --log tensorboard or --log wandb")
        if args.device is not None and (args.ray or args.devices):
            raise ValueError("--device: not with --ray or --devices (they choose each worker's device)")
        for flag, names in (("--device", [args.device] if args.device else []), ("--devices", args.devices or [])):
            for name in names:
                _check_device(flag, name)
        ray_options = _ray_options(args) if args.ray else {}
        tracking = None
        if args.log is not None:
            tracking = Tracking(args.log, str(args.log_dir or default_log_dir(args.out)))
        speed_table = None
        if args.speed_table is not None:
            if not (args.dry_run or args.time_budget_s is not None):
                raise ValueError("--speed-table: only with --dry-run or --time-budget-s (it projects device time)")
            speed_table = _speed_table(args.speed_table)
        budget = None
        if args.skip_unprojected and args.time_budget_s is None:  # TimeBudget checks that a table is given
            raise ValueError(SKIP_UNPROJECTED_RULE)
        if args.time_budget_s is not None:
            if args.dry_run or args.ray or args.devices:
                raise ValueError("--time-budget-s: not with --dry-run, --ray or --devices (one process trains)")
            budget = TimeBudget(
                args.time_budget_s,
                speed_table,
                skip_unprojected=args.skip_unprojected,
                started=started,
                clock=time.time,
            )
        if not args.dry_run:
            RecordsStore(args.out).check_writable()
            if tracking is not None:
                tracking.validate()
    if args.dry_run:
        summaries = sweep_summary(sweeps)
        resumed = Path(args.out).exists()  # a resumed sweep: what the results file holds and what is left to train
        done = done_run_ids(args.out) if resumed else set()
        for summary, sw in zip(summaries, sweeps):
            if resumed:
                summary["models"] = runs_left(sw, done)
                summary["left"] = sum(m["left"] for m in summary["models"].values())
            if speed_table is not None:
                summary["projection"] = project(sw, done, speed_table)
        print(json.dumps(summaries, indent=1))
        return 0
    if args.ray:
        from mqarkit.gpu.frontier.ray_launcher import RayTasksFailed, run_ray
        from mqarkit.gpu.frontier.runner import elapsed_log

        try:
            n = run_ray(sweeps, args.out, tracking=tracking, log=elapsed_log(started), **ray_options)
        except RayTasksFailed as failed:
            for task in failed.failed:
                print(f"mqarkit frontier: task {task.label} failed: {task.error}", file=sys.stderr)
            print(f"mqarkit frontier: {failed}", file=sys.stderr)
            return 1
    elif args.devices:
        from mqarkit.gpu.frontier.launchers import run_multiprocess

        n = run_multiprocess(
            sweeps, args.out, args.devices, started=started, tracking=tracking, deterministic=args.deterministic
        )
    else:
        from mqarkit.gpu.frontier.runner import StacksOutOfMemory

        try:
            n = _run_here(args, sweeps, tracking, started, budget)
        except StacksOutOfMemory as failed:
            for stack in failed.stacks:
                print(f"mqarkit frontier: out of device memory: {stack}", file=sys.stderr)
            rerun = "a rerun with the same --out trains them again"
            print(f"mqarkit frontier: {failed.written} runs recorded in {args.out}; {rerun}", file=sys.stderr)
            return 1
    print(f"recorded {n} runs in {args.out} ({time.time() - started:.1f} s)")
    return 0


def _run_here(
    args: argparse.Namespace, sweeps: list, tracking: Tracking | None, started: float, budget: TimeBudget | None
) -> int:
    """One process on ``--device``, with the progress display where it is wanted."""
    import torch

    from mqarkit.gpu.frontier import progress
    from mqarkit.gpu.frontier.runner import elapsed_log, run_sweeps

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    display = progress.ProgressDisplay() if progress.wanted(args.no_progress) else None
    with display or nullcontext():
        observers = None if display is None else [display]  # the display replaces the epochs' log lines
        return run_sweeps(
            sweeps,
            args.out,
            device,
            log=elapsed_log(started),
            observers=observers,
            tracking=tracking,
            deterministic=args.deterministic,
            budget=budget,
        )


def _compare(args: argparse.Namespace) -> int:
    """``mqarkit frontier compare``: every input checked first (one line, exit 2), then the Markdown written."""

    from mqarkit.gpu.frontier.compare import comparison_markdown
    from mqarkit.gpu.frontier.records import RECORD_STATUSES, read_records

    with usage_errors():
        missing = [p for p in args.results if not Path(p).is_file()]
        if missing:
            raise ValueError(f"--results: {missing[0]} is not a file")
        if args.out is not None:
            check_output_file(args.out, parameter="out")
        records = [r for p in args.results for r in read_records(p, statuses=RECORD_STATUSES)]
        text = comparison_markdown(records, args.paper, args.sweeps)
    if args.out is None:
        print(text, end="")
    else:
        Path(args.out).write_text(text)
        print(args.out)
    return 0


def _merge(args: argparse.Namespace) -> int:
    """``mqarkit frontier merge``: every input checked first (one line, exit 2), then one line per input."""
    from mqarkit.gpu.frontier.merge import append_inputs, check_inputs

    with usage_errors():
        check_inputs(args.into, args.inputs)
    for merged in append_inputs(args.into, args.inputs):
        print(merged.line())
    return 0


def _speed_table(path: str) -> dict:
    """The speed table at ``path``; a ``ValueError`` naming ``--speed-table`` if it is not one."""
    try:
        table = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"--speed-table={path}: cannot read a JSON speed table ({exc})") from None
    if not (isinstance(table, dict) and {"env", "settings", "rows"} <= table.keys()):
        raise ValueError(
            f"--speed-table={path}: not benchmarks/frontier_speed.py's families table (env, settings, rows)"
        )
    return table


def _check_device(flag: str, name: str) -> None:
    """``name`` is a device this machine has (a ``ValueError`` naming ``flag`` otherwise), before any work."""
    try:
        resolve_device(name)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"{flag}: {exc}") from None
