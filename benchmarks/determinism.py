"""The frontier harness's deterministic mode: what it costs in speed, and how much runs vary without it.

Trains one small real sweep — the smallest model of each of ``--families`` in ``--preset`` (default: ``based-fig2``'s
attention and Based), on that preset's data shrunk by ``--example-scale``, ``--epochs`` epochs, every learning rate
of the preset × ``--seeds`` — ``--repeats`` times without and ``--repeats`` times with deterministic mode
(:mod:`mqarkit.gpu.frontier.determinism`), each repetition a fresh Python process (the mode is process-wide, and
cuBLAS reads its workspace setting when CUDA starts), the modes alternating (off, on, off, on, ...) so that a cold
compilation cache burdens both. The runs go through the harness's own runner (``run_sweeps``, as ``mqarkit frontier
run`` does); the processes without the mode get none of its environment variables.

Per repetition: the process's wall clock (from start to exit: imports, data, compilation and graph capture included),
the training seconds (``train_stack``'s, to the end of the device's work), and per stack the time of every epoch
after the first (the first holds compilation and CUDA-graph capture; each epoch ends with the test evaluation, which
reads its counts back to the host, and an explicit ``torch.cuda.synchronize``). The cost of the mode is the ratio of
the medians over repetitions (``steady epoch``: the sum over stacks of each stack's median later epoch — the number
that matters for a long sweep; ``training`` and ``process`` beside it). Reproducibility: the two first repetitions
of each mode are compared run by run — final training loss and every test slice's accuracy, exactly (and the loss
of every epoch) — giving for the deterministic pair the runs that are not bitwise identical (there should be none),
and for the pair without the mode how many runs differ at all and by how much (max and median over runs of each
run's largest |Δ accuracy| over its slices, and |Δ final loss|).

Writes ``determinism.json`` and ``determinism.md`` under ``--out-dir`` (default ``docs/results``), with the device,
driver and versions. ``--time-budget-s``: no repetition starts after that many seconds; what ran is written, and the
files say that the budget cut the plan short. Exit status 1 when a repetition failed (its error and log are in the
files).

    python benchmarks/determinism.py [--device cuda] [--epochs 4] [--example-scale 0.1] [--time-budget-s 120]
    python benchmarks/determinism.py --device cpu --preset tiny --families attention --epochs 1 --seeds 0  # smoke
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FAMILIES = ("attention", "based")
MIN_CHILD_TIMEOUT_S = 60  # one repetition (one process) may take max(this, 2 x the budget); a hung one is reported
MODES = {False: "off", True: "on"}


# ---------------------------------------------------------------- the sweep
def build_sweep(preset: str, families: list[str], epochs: int, example_scale: float, seeds: list[int], lrs):
    """The benchmark's sweep: the smallest model (by ``d_model``, the first listed among equals) of each family in
    ``preset``'s first sweep, on its data shrunk by ``example_scale``; validated (errors name the option)."""
    from mqarkit.gpu.frontier.presets import load_preset, reduce

    if not families:
        raise ValueError("--families: needs at least one family")
    sweep = load_preset(preset)[0]
    have = {m.family for m in sweep.models}
    missing = [f for f in families if f not in have]
    if missing:
        raise ValueError(f"--families: {missing} not in preset {preset!r} (it has {sorted(have)})")
    models = tuple(min((m for m in sweep.models if m.family == f), key=lambda m: m.d_model) for f in families)
    sweep = replace(sweep, models=models, notes=(*sweep.notes, f"determinism benchmark: models {models_label(models)}"))
    reduced = reduce(
        [sweep],
        epochs=epochs,
        example_scale=example_scale,
        seeds=tuple(seeds),
        lrs=None if lrs is None else tuple(lrs),
    )
    return reduced[0]


def models_label(models) -> str:
    return ", ".join(m.label() for m in models)


# ---------------------------------------------------------------- one repetition (the child process)
def run_child(spec_path: str) -> int:
    """Train the sweep of ``spec`` once in its mode; write the records and the timings where ``spec`` says."""
    import torch

    from mqarkit.gpu.frontier.observers import StackObserver, stack_name
    from mqarkit.gpu.frontier.runner import run_sweeps

    spec = json.loads(Path(spec_path).read_text())
    device = torch.device(spec["device"])

    def now() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    class EpochTimer(StackObserver):
        def __init__(self) -> None:
            self.stacks: list[dict] = []

        def stack_started(self, sweep, group) -> None:
            self.stacks.append({"stack": stack_name(group), "runs": len(group), "epoch_seconds": []})
            self.mark = now()

        def epoch_ended(self, sweep, group, report) -> None:
            t = now()
            self.stacks[-1]["epoch_seconds"].append(t - self.mark)
            self.mark = t

        def stack_finished(self, sweep, group, result) -> None:
            self.stacks[-1]["train_seconds"] = result.train_seconds

    sweep = build_sweep(
        spec["preset"], spec["families"], spec["epochs"], spec["example_scale"], spec["seeds"], spec["lrs"]
    )
    timer = EpochTimer()
    log = lambda line: print(line, flush=True)  # noqa: E731
    run_sweeps([sweep], spec["records"], device, log=log, observers=[timer], deterministic=spec["deterministic"])
    Path(spec["timings"]).write_text(json.dumps({"stacks": timer.stacks}))
    return 0


# ---------------------------------------------------------------- comparing two repetitions
def _same(a: float | None, b: float | None) -> bool:
    """Exact equality, a NaN equal to a NaN (a diverged run's loss)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _delta(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return None
    return abs(a - b)


def compare_runs(first: list[dict], second: list[dict]) -> dict:
    """Two repetitions' records, run by run (matched by ``run_id``): which runs are bitwise identical in final loss
    and per-slice accuracies (and loss history), and the largest differences."""
    a, b = {r["run_id"]: r for r in first}, {r["run_id"]: r for r in second}
    if set(a) != set(b):
        raise ValueError(f"records: the repetitions hold different runs ({sorted(set(a) ^ set(b))[:3]} ...)")
    runs = []
    for run_id in sorted(a):
        ra, rb = a[run_id], b[run_id]
        acc_a = [s["accuracy"] for s in ra["accuracy"]]
        acc_b = [s["accuracy"] for s in rb["accuracy"]]
        loss_a = ra["loss_history"][-1] if ra["loss_history"] else None
        loss_b = rb["loss_history"][-1] if rb["loss_history"] else None
        history_same = len(ra["loss_history"]) == len(rb["loss_history"]) and all(
            _same(x, y) for x, y in zip(ra["loss_history"], rb["loss_history"])
        )
        runs.append(
            {
                "run_id": run_id,
                "identical": _same(loss_a, loss_b) and acc_a == acc_b,
                "loss_history_identical": history_same,
                "max_abs_delta_accuracy": max(abs(x - y) for x, y in zip(acc_a, acc_b)),
                "abs_delta_final_loss": _delta(loss_a, loss_b),
            }
        )
    per_run = [r["max_abs_delta_accuracy"] for r in runs]
    losses = [r["abs_delta_final_loss"] for r in runs if r["abs_delta_final_loss"] is not None]
    return {
        "runs": len(runs),
        "runs_identical": sum(r["identical"] for r in runs),
        "runs_differing": sum(not r["identical"] for r in runs),
        "runs_loss_history_identical": sum(r["loss_history_identical"] for r in runs),
        "max_abs_delta_accuracy": max(per_run),
        "median_abs_delta_accuracy": statistics.median(per_run),
        "max_abs_delta_final_loss": max(losses) if losses else None,
        "median_abs_delta_final_loss": statistics.median(losses) if losses else None,
        "per_run": runs,
    }


# ---------------------------------------------------------------- timings
def steady_epoch_seconds(timings: dict) -> float | None:
    """Σ over stacks of the median epoch time after the first; None when some stack trained one epoch only."""
    later = [s["epoch_seconds"][1:] for s in timings["stacks"]]
    if not later or any(not t for t in later):
        return None
    return sum(statistics.median(t) for t in later)


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _ratio(on: float | None, off: float | None) -> float | None:
    return None if on is None or off is None or off <= 0 else on / off


def summarise_timings(repetitions: list[dict]) -> dict:
    """Per mode: the medians of the finished repetitions' timings; the slowdown factors (on / off)."""
    modes = {}
    for deterministic, name in MODES.items():
        done = [r for r in repetitions if r["deterministic"] == deterministic and r["ok"]]
        modes[name] = {
            "repetitions": len(done),
            "process_seconds": [r["process_seconds"] for r in done],
            "train_seconds": [r["train_seconds"] for r in done],
            "steady_epoch_seconds": [r["steady_epoch_seconds"] for r in done],
            "median_process_seconds": _median([r["process_seconds"] for r in done]),
            "median_train_seconds": _median([r["train_seconds"] for r in done]),
            "median_steady_epoch_seconds": _median([r["steady_epoch_seconds"] for r in done]),
        }
    slowdown = {
        key: _ratio(modes["on"][f"median_{key}"], modes["off"][f"median_{key}"])
        for key in ("steady_epoch_seconds", "train_seconds", "process_seconds")
    }
    return {"modes": modes, "slowdown": slowdown}


# ---------------------------------------------------------------- the machine
def machine(device: str, records: list[dict]) -> dict:
    """Device name (from a record: the child processes' own), driver, CUDA and library versions."""
    import torch

    from mqarkit.gpu.device import triton_version

    driver = None
    if device.startswith("cuda"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            driver = out.stdout.split("\n")[0].strip() or None
        except (OSError, subprocess.SubprocessError):
            driver = None

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    first = records[0] if records else {}
    return {
        "device": first.get("device"),
        "device_type": first.get("device_type"),
        "driver": driver,
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "triton": triton_version(),
        "fla_core": version("fla-core"),
        "flash_linear_attention": version("flash-linear-attention"),
        "python": sys.version.split()[0],
        "git_commit": first.get("git_commit"),
        "git_dirty": first.get("git_dirty"),
        "cuda_graphs": first.get("cuda_graphs"),
        "compile": first.get("compile"),
    }


# ---------------------------------------------------------------- the parent
def child_environment(deterministic: bool) -> dict[str, str]:
    """The environment of a repetition: the mode's variables set (on) or removed (off)."""
    from mqarkit.gpu.frontier.determinism import ENVIRONMENT, prepare_environment

    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
    return prepare_environment(env) if deterministic else env


def run_repetition(spec: dict, work: Path, index: int, timeout: float) -> dict:
    """One repetition in a fresh process; its records, timings and outcome."""
    tag = f"{index}-{MODES[spec['deterministic']]}"
    spec = {**spec, "records": str(work / f"records-{tag}.jsonl"), "timings": str(work / f"timings-{tag}.json")}
    for stale in (spec["records"], spec["timings"]):  # a reused --work-dir: the runner would resume, not retrain
        Path(stale).unlink(missing_ok=True)
    spec_path = work / f"spec-{tag}.json"
    spec_path.write_text(json.dumps(spec))
    log_path = work / f"log-{tag}.txt"
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)],
            env=child_environment(spec["deterministic"]),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        rc, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, output = None, f"timed out after {timeout:.0f} s\n{exc.stdout or ''}{exc.stderr or ''}"
        output = output if isinstance(output, str) else str(output)
    seconds = time.perf_counter() - t0
    log_path.write_text(output)
    result = {
        "index": index,
        "deterministic": spec["deterministic"],
        "ok": rc == 0,
        "exit_status": rc,
        "process_seconds": seconds,
        "log": str(log_path),
    }
    if rc != 0:
        return result | {"error": "\n".join(output.strip().splitlines()[-20:])}
    from mqarkit.gpu.frontier.records import read_records

    records = read_records(spec["records"])
    timings = json.loads(Path(spec["timings"]).read_text())
    wrong = [r["run_id"] for r in records if r.get("deterministic") is not spec["deterministic"]]
    if wrong:  # the record must say the mode it was made under
        return result | {"ok": False, "error": f"records say deterministic != {spec['deterministic']}: {wrong[:3]}"}
    return result | {
        "records": records,
        "stacks": timings["stacks"],
        "train_seconds": sum(s["train_seconds"] for s in timings["stacks"]),
        "steady_epoch_seconds": steady_epoch_seconds(timings),
    }


def _fmt(x: float | None, spec: str = ".3f") -> str:
    return "–" if x is None else format(x, spec)


def report_markdown(result: dict) -> str:
    m, s, t = result["machine"], result["sweep"], result["timings"]
    lines = [
        "# Deterministic mode: cost and run-to-run variation (raw results)",
        "",
        f"Written by `benchmarks/determinism.py` ({result['command']}); the analysis is in `docs/determinism.md`.",
        "",
        f"Device: {m['device']} ({m['device_type']}; driver {m['driver']}, CUDA {m['cuda']}), torch {m['torch']}, "
        f"triton {m['triton']}, fla-core {m['fla_core']}, Python {m['python']}; commit {m['git_commit']} "
        f"(dirty: {m['git_dirty']}); CUDA graphs {m['cuda_graphs']}, compile {m['compile']}.",
        "",
        f"Sweep: preset `{s['preset']}`, models {s['models']}, {s['runs']} runs ({s['lrs']} lrs × seeds {s['seeds']}),"
        f" {s['epochs']} epochs, examples × {s['example_scale']} ({s['train_examples']} training examples).",
        "",
    ]
    if result["budget_exhausted"]:
        lines += [
            f"**The time budget ({result['time_budget_s']} s) stopped the plan**: {len(result['repetitions'])} of "
            f"{result['repetitions_planned']} repetitions ran.",
            "",
        ]
    lines += [
        "| repetition | mode | ok | process (s) | training (s) | steady epoch (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["repetitions"]:
        lines.append(
            f"| {r['index']} | {MODES[r['deterministic']]} | {r['ok']} | {_fmt(r['process_seconds'], '.1f')} | "
            f"{_fmt(r.get('train_seconds'), '.2f')} | {_fmt(r.get('steady_epoch_seconds'))} |"
        )
    lines += ["", "| median | off | on | slowdown (on / off) |", "|---|---|---|---|"]
    for key, label in (
        ("steady_epoch_seconds", "steady epoch (s)"),
        ("train_seconds", "training (s)"),
        ("process_seconds", "process (s)"),
    ):
        off, on = t["modes"]["off"][f"median_{key}"], t["modes"]["on"][f"median_{key}"]
        lines.append(f"| {label} | {_fmt(off)} | {_fmt(on)} | {_fmt(t['slowdown'][key], '.3f')}× |")
    lines += [
        "",
        "| pair | runs | bitwise identical | differing | max abs Δ acc | median abs Δ acc | max abs Δ loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in ("on", "off"):
        c = result["comparison"].get(mode)
        if c is None:
            lines.append(f"| {mode} | – | fewer than two repetitions finished | | | | |")
            continue
        lines.append(
            f"| {mode} | {c['runs']} | {c['runs_identical']} | {c['runs_differing']} | "
            f"{_fmt(c['max_abs_delta_accuracy'], '.4f')} | {_fmt(c['median_abs_delta_accuracy'], '.4f')} | "
            f"{_fmt(c['max_abs_delta_final_loss'], '.2e')} |"
        )
    failed = [r for r in result["repetitions"] if not r["ok"]]
    for r in failed:
        lines += ["", f"Repetition {r['index']} ({MODES[r['deterministic']]}) failed:", "", "```", r["error"], "```"]
    return "\n".join(lines) + "\n"


def print_table(result: dict) -> None:
    print(report_markdown(result))


def check_args(args: argparse.Namespace) -> None:
    """Every option's rule before any work (``ValueError`` naming the option)."""
    if args.epochs < 1:
        raise ValueError(f"--epochs={args.epochs}: needs at least 1")
    if args.repeats < 2:
        raise ValueError(f"--repeats={args.repeats}: needs at least 2 (two runs of each mode are compared)")
    if not (args.time_budget_s > 0 and math.isfinite(args.time_budget_s)):
        raise ValueError(f"--time-budget-s={args.time_budget_s}: needs a number of seconds > 0")
    if not args.seeds or len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        raise ValueError(f"--seeds={args.seeds}: needs distinct seeds >= 0")
    from mqarkit.gpu.device import resolve_device
    from mqarkit.gpu.frontier.determinism import check_environment

    try:
        resolve_device(args.device)
    except RuntimeError as exc:
        raise ValueError(f"--device: {exc}") from None
    check_environment()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--preset", default="based-fig2", help="the preset whose data and models are used")
    ap.add_argument("--families", nargs="+", default=list(DEFAULT_FAMILIES), help="the smallest model of each")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--example-scale", type=float, default=0.1, help="shrink the data (0 < s <= 1; CPU smoke runs)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--lrs", type=float, nargs="+", default=None, help="default: the preset's")
    ap.add_argument("--repeats", type=int, default=2, help="repetitions of each mode (fresh processes)")
    ap.add_argument("--time-budget-s", type=float, default=120.0, help="start no repetition after this many seconds")
    ap.add_argument("--out-dir", default=str(REPO / "docs" / "results"))
    ap.add_argument("--work-dir", default=None, help="the repetitions' records and logs (default: a temporary one)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child is not None:
        return run_child(args.child)
    check_args(args)
    sweep = build_sweep(args.preset, args.families, args.epochs, args.example_scale, args.seeds, args.lrs)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="mqarkit-determinism-"))
    work.mkdir(parents=True, exist_ok=True)
    spec = {
        "device": args.device,
        "preset": args.preset,
        "families": args.families,
        "epochs": args.epochs,
        "example_scale": args.example_scale,
        "seeds": args.seeds,
        "lrs": args.lrs,
    }
    plan = [mode for _ in range(args.repeats) for mode in (False, True)]  # off, on, off, on, ...
    started = time.perf_counter()
    repetitions, exhausted = [], False
    for index, deterministic in enumerate(plan):
        elapsed = time.perf_counter() - started
        if elapsed >= args.time_budget_s:
            exhausted = True
            print(f"time budget {args.time_budget_s:.0f} s reached after {elapsed:.1f} s: {index} of {len(plan)} ran")
            break
        timeout = max(MIN_CHILD_TIMEOUT_S, 2 * args.time_budget_s)
        rep = run_repetition({**spec, "deterministic": deterministic}, work, index, timeout)
        repetitions.append(rep)
        print(
            f"[+{time.perf_counter() - started:6.1f} s] repetition {index} ({MODES[deterministic]}): "
            f"{'ok' if rep['ok'] else 'FAILED'}, {rep['process_seconds']:.1f} s",
            flush=True,
        )
    comparison = {}
    for deterministic, name in MODES.items():
        done = [r for r in repetitions if r["deterministic"] == deterministic and r["ok"]]
        if len(done) >= 2:
            comparison[name] = compare_runs(done[0]["records"], done[1]["records"])
    all_records = [rec for r in repetitions if r["ok"] for rec in r["records"]]
    result = {
        "command": "python benchmarks/determinism.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(args.device, all_records),
        "sweep": {
            "preset": args.preset,
            "models": models_label(sweep.models),
            "runs": len(sweep.runs()),
            "lrs": list(sweep.lrs),
            "seeds": list(sweep.seeds),
            "epochs": sweep.epochs,
            "example_scale": args.example_scale,
            "train_examples": sum(s.num_examples for s in sweep.train),
            "notes": list(sweep.notes),
        },
        "time_budget_s": args.time_budget_s,
        "budget_exhausted": exhausted,
        "repetitions_planned": len(plan),
        "wall_seconds": time.perf_counter() - started,
        "repetitions": [{k: v for k, v in r.items() if k != "records"} for r in repetitions],
        "timings": summarise_timings(repetitions),
        "comparison": comparison,
    }
    (out_dir / "determinism.json").write_text(json.dumps(result, indent=1, allow_nan=False))
    (out_dir / "determinism.md").write_text(report_markdown(result))
    print_table(result)
    print(f"wrote {out_dir / 'determinism.json'} and {out_dir / 'determinism.md'}")
    return 0 if all(r["ok"] for r in repetitions) else 1


if __name__ == "__main__":
    sys.exit(main())
