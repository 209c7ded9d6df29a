"""A stack's real training epochs against the speed table's projection, and where a difference comes from.

The speed table (``frontier_speed.py``) projects a stack's epoch as Σ over training segments of the median of a few
isolated steps × the segment's steps per epoch, plus one warm evaluation. Training (``train.train_stack``) instead
takes an epoch's batches of all segments shuffled together (``train.epoch_plan``), back to back, evaluates after
every epoch and runs for minutes. For one stack of a preset (``--preset``, ``--family``, ``--d-model``,
``--seeds``, ``--max-stack-runs``, ``--stack``: the stack a paper sweep trains), on the preset's data, this script
times:

1. ``projection``: ``frontier_speed.bench_group``, the speed table's figure for this stack;
2. ``steps by segment``: one epoch's steps, each segment's batches together (the projection's order), timed whole;
3. ``steps shuffled``: the same epoch's steps in the training loop's order (``epoch_plan``);
4. ``evaluation``: one evaluation of the test slices, warm;
5. ``train_stack``: ``--epochs`` epochs of a fresh stack through ``train_stack`` itself, each epoch's wall time (the
   first includes CUDA-graph capture and any compilation the parts above did not do).

Parts 2–4 run on one stack after one untimed warm step per segment (full and partial batch) and one untimed
evaluation. On CUDA, parts 1–4 are timed with CUDA events over the whole part, part 5 by the wall clock at each
epoch's end (where the evaluation has synchronised), and ``nvidia-smi`` is sampled every
``SAMPLE_PERIOD_S`` during each part (SM clock, power, temperature, the active clock-event reasons), so a sustained
part that runs at lower clocks shows it. Writes ``epoch_check.json`` and ``epoch_check.md`` under ``--out-dir``.

    python benchmarks/epoch_check.py --preset based-fig2 --seeds 0 1 2 --family h3 --d-model 128 --max-stack-runs 12
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import torch
from frontier_speed import bench_group, nvidia_smi_query, timer

from mqarkit.gpu.frontier.model import StackedHybrid
from mqarkit.gpu.frontier.optim import StackedAdamW
from mqarkit.gpu.frontier.presets import get_preset
from mqarkit.gpu.frontier.runner import environment, environment_line, make_data
from mqarkit.gpu.frontier.steps import DEFAULT_BUDGET
from mqarkit.gpu.frontier.sweep import groups
from mqarkit.gpu.frontier.train import epoch_plan, evaluate, train_stack, training_step

SAMPLE_PERIOD_S = 0.5
SMI_FIELDS = ("clocks.sm", "power.draw", "temperature.gpu")
# the active clock-event reasons (a bit mask, "0x…"): the field's name since driver 535, then its older name
REASON_FIELDS = ("clocks_event_reasons.active", "clocks_throttle_reasons.active")
REASONS = "clock_event_reasons"
PROJECTION_STEPS = 3  # timed steps per segment in the projection, as the speed table's families mode


class SmiSampler(threading.Thread):
    """``nvidia-smi`` readings of the first GPU every ``period`` s, each tagged with the part running then."""

    def __init__(self, period: float = SAMPLE_PERIOD_S):
        super().__init__(daemon=True)
        self.period, self.part = period, None
        self.samples: list[dict] = []
        self.stop_flag = threading.Event()

    def read(self) -> dict | None:
        """One reading: the numeric fields (None if nvidia-smi cannot give them) and the reasons' mask (None if
        neither of its names is known to this driver, so an unknown name costs the reasons only)."""
        line = nvidia_smi_query(",".join(SMI_FIELDS))
        values = [v.strip() for v in line.split(",")] if line else []
        if len(values) != len(SMI_FIELDS):
            return None
        masks = (nvidia_smi_query(field) for field in REASON_FIELDS)
        return dict(zip(SMI_FIELDS, values)) | {REASONS: next((m for m in masks if m and m.startswith("0x")), None)}

    def run(self) -> None:
        while not self.stop_flag.is_set():
            part = self.part
            if part is not None:
                reading = self.read()
                if reading is not None and part == self.part:
                    self.samples.append({"part": part, **reading})
            time.sleep(self.period)

    def summary(self, part: str) -> dict | None:
        """Median SM clock (MHz), mean power (W), highest temperature (°C) and the clock-event reasons seen."""
        rows = [s for s in self.samples if s["part"] == part]
        if not rows:
            return None
        numbers = {field: [float(r[field]) for r in rows if _is_number(r[field])] for field in SMI_FIELDS}
        return {
            "samples": len(rows),
            "sm_clock_mhz_median": statistics.median(numbers["clocks.sm"]) if numbers["clocks.sm"] else None,
            "power_w_mean": statistics.mean(numbers["power.draw"]) if numbers["power.draw"] else None,
            "temperature_c_max": max(numbers["temperature.gpu"]) if numbers["temperature.gpu"] else None,
            REASONS: sorted({row[REASONS] for row in rows if row[REASONS] is not None}),
        }


def _is_number(text: str) -> bool:
    """Whether an nvidia-smi value is a number (it writes ``[N/A]`` where it has none)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def the_stack(args: argparse.Namespace):
    """The preset's sweep narrowed to one family and width, and its ``--stack``-th stack of runs."""
    seeds = tuple(args.seeds) if args.seeds else None
    sweeps = get_preset(args.preset, families=(args.family,), d_models=(args.d_model,), seeds=seeds)
    if len(sweeps) != 1:
        raise ValueError(f"--preset/--family/--d-model: {len(sweeps)} sweeps hold {args.family} at d = {args.d_model}")
    sweep = replace(sweeps[0], max_stack_runs=args.max_stack_runs)
    sweep.validate()
    stacks = groups(sweep)
    if not 0 <= args.stack < len(stacks):
        raise ValueError(f"--stack={args.stack}: needs 0 <= stack < {len(stacks)} (the stacks of this selection)")
    return sweep, stacks[args.stack]


def release(device: torch.device) -> None:
    """Free a finished part's stack (its CUDA graphs' pool); compiled code is kept, as a sweep's process keeps it."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def timed_steps(take_step, train, plan, device) -> float:
    """Seconds for the steps of ``plan`` (``(segment index, rows)``), launched back to back, synchronised once."""
    stop = timer(device)
    for si, rows in plan:
        take_step(train[si], rows, 1.0)
    return stop()


def measure(args: argparse.Namespace, sweep, group, device: torch.device, sampler: SmiSampler | None) -> dict:
    """Every part of the module docstring on ``group``, a stack of ``sweep`` (:func:`the_stack`)."""
    stop = timer(device)
    train, test = make_data(sweep, device)
    data_s = stop()
    lrs = [r.lr for r in group]
    parts: dict[str, dict] = {}

    def new_model() -> StackedHybrid:
        return StackedHybrid([r.model for r in group], [r.init_seed() for r in group], device)

    def part(name: str | None) -> None:  # what the sampler tags its readings with from now on
        if sampler is not None:
            sampler.part = name

    gen = torch.Generator(device=device).manual_seed(args.seed)
    part("projection")
    projection = bench_group(sweep, group, train, test, device, PROJECTION_STEPS, gen, 0.0, DEFAULT_BUDGET)
    release(device)
    parts["projection"] = {"seconds": projection["epoch_s"], "eval_s": projection["eval_s"]}

    model = new_model()
    opt = StackedAdamW(model, torch.tensor(lrs), weight_decay=0.1)
    take_step = training_step(model, opt, batch_size=sweep.batch_size, budget=DEFAULT_BUDGET)
    plan = epoch_plan(train, sweep.batch_size, gen)
    part("warm-up")
    warm = {}
    for si, rows in plan:  # one full and one partial batch of each segment: graphs captured, shapes compiled
        warm.setdefault((si, rows.numel()), rows)
    timed_steps(take_step, train, [(si, rows) for (si, _), rows in warm.items()], device)
    evaluate(model, test, batch=sweep.test_batch_size, budget=DEFAULT_BUDGET)
    by_segment = sorted(plan, key=lambda item: item[0])  # stable: each segment's batches in the plan's order
    part("steps by segment")
    parts["steps by segment"] = {"seconds": timed_steps(take_step, train, by_segment, device), "steps": len(plan)}
    part("steps shuffled")
    parts["steps shuffled"] = {"seconds": timed_steps(take_step, train, plan, device), "steps": len(plan)}
    part("evaluation")
    stop = timer(device)
    evaluate(model, test, batch=sweep.test_batch_size, budget=DEFAULT_BUDGET)
    parts["evaluation"] = {"seconds": stop()}
    del model, opt, take_step
    release(device)

    part("train_stack")
    ends: list[float] = []
    t0 = time.perf_counter()
    train_stack(
        new_model(),
        lrs,
        train,
        test,
        epochs=args.epochs,
        generator=torch.Generator(device=device).manual_seed(args.seed),
        batch_size=sweep.batch_size,
        test_batch_size=sweep.test_batch_size,
        early_stop=2.0,  # never: every epoch of every run is timed
        schedule=sweep.lr_schedule,
        on_epoch=lambda report: ends.append(time.perf_counter() - t0),
    )
    part(None)
    epoch_s = [b - a for a, b in zip([0.0] + ends[:-1], ends)]
    warm_epochs = epoch_s[1:]
    parts["train_stack"] = {"epoch_s": epoch_s, "warm_epoch_s_median": statistics.median(warm_epochs)}
    for name, entry in parts.items():
        entry["gpu"] = sampler.summary(name) if sampler is not None else None
    return {
        "sweep": sweep.name,
        "stack": [r.run_id for r in group],
        "runs": len(group),
        "family": args.family,
        "d_model": args.d_model,
        "data_s": data_s,
        "steps_per_epoch": len(plan),
        "parts": parts,
        "projection_row": projection,
    }


def write_report(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "epoch_check.json").write_text(json.dumps(report, indent=1) + "\n")
    r, p = report["result"], report["result"]["parts"]
    projected = p["projection"]["seconds"]
    real = p["train_stack"]["warm_epoch_s_median"]
    steps_and_eval = p["steps shuffled"]["seconds"] + p["evaluation"]["seconds"]
    lines = [
        f"# A stack's real epochs against the projection: {r['family']} d = {r['d_model']}, {r['runs']} runs\n",
        environment_line(report) + "\n",
        f"Sweep `{r['sweep']}`, {r['steps_per_epoch']} steps an epoch; data generated in {r['data_s']:.1f} s. "
        "Produced by `benchmarks/epoch_check.py` (its docstring says what each part times).\n",
        "| part | seconds (an epoch) | × projection | SM clock (MHz, median) | power (W, mean) | max °C | clock-event "
        "reasons |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = [
        ("projection (speed table)", projected, "projection"),
        ("steps by segment", p["steps by segment"]["seconds"], "steps by segment"),
        ("steps shuffled", p["steps shuffled"]["seconds"], "steps shuffled"),
        ("evaluation (warm)", p["evaluation"]["seconds"], "evaluation"),
        ("steps shuffled + evaluation", steps_and_eval, None),
        ("train_stack, warm epochs (median)", real, "train_stack"),
    ]
    for label, seconds, key in rows:
        gpu = p[key]["gpu"] if key else None
        cells = ["–"] * 4
        if gpu:
            reasons = ", ".join(gpu[REASONS])
            cells = [str(gpu["sm_clock_mhz_median"]), f"{gpu['power_w_mean']:.0f}" if gpu["power_w_mean"] else "–"]
            cells += [str(gpu["temperature_c_max"]), reasons]
        lines.append(f"| {label} | {seconds:.2f} | {seconds / projected:.2f} | " + " | ".join(cells) + " |")
    lines.append(
        "\ntrain_stack's epochs (s): " + ", ".join(f"{s:.2f}" for s in p["train_stack"]["epoch_s"]) + " (the first "
        "includes graph capture and compilation)."
    )
    (out / "epoch_check.md").write_text("\n".join(lines) + "\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="based-fig2")
    ap.add_argument("--family", required=True)
    ap.add_argument("--d-model", type=int, required=True)
    ap.add_argument("--max-stack-runs", type=int, default=12, help="as the sweep's (default 12)")
    ap.add_argument("--stack", type=int, default=0, help="which stack of the selection (default 0, the first)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="as the sweep's --seeds (default the preset's)")
    ap.add_argument("--epochs", type=int, default=3, help="train_stack's epochs (>= 2: the first is not warm)")
    ap.add_argument("--seed", type=int, default=1, help="the batches' generator")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out-dir", default="docs/results")
    args = ap.parse_args(argv)
    if args.epochs < 2:
        raise ValueError(f"--epochs={args.epochs}: needs an integer >= 2 (the first epoch is not warm)")
    if args.max_stack_runs < 1:
        raise ValueError(f"--max-stack-runs={args.max_stack_runs}: needs an integer >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(argv)
        sweep, group = the_stack(args)  # every rule of the selection, before any data or device work
    except ValueError as exc:
        print(f"epoch_check.py: {exc}", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    sampler = SmiSampler() if device.type == "cuda" else None
    if sampler is not None:
        sampler.start()
    try:
        result = measure(args, sweep, group, device, sampler)
    finally:
        if sampler is not None:
            sampler.stop_flag.set()
    report = {"env": environment(device), "command": "python benchmarks/epoch_check.py " + " ".join(argv)}
    report["result"] = result
    write_report(report, Path(args.out_dir))
    p = result["parts"]
    print(
        f"{args.family} d={args.d_model} R={result['runs']}: projection {p['projection']['seconds']:.2f} s, "
        f"steps by segment {p['steps by segment']['seconds']:.2f} s, shuffled {p['steps shuffled']['seconds']:.2f} s, "
        f"evaluation {p['evaluation']['seconds']:.2f} s, train_stack warm epoch "
        f"{p['train_stack']['warm_epoch_s_median']:.2f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
