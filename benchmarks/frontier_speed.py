"""Frontier-harness speed: model-epochs per second per stack, GPU utilisation, projected wall time per preset.

For every stack (group of runs) of the ``based-slice`` and ``based-fig2`` presets, on the preset's real data
(generated on the device, timed too): build the stacked model, warm up, then time ``--steps`` optimiser steps drawn
in proportion from the training segments (CUDA events on the GPU, ``perf_counter`` elsewhere) and one full test
evaluation. Projected epoch time of a stack = median step time of each segment × its steps per epoch + evaluation;
model-epochs/s = runs in the stack / projected epoch time; a preset's projection = data + Σ over stacks of
epochs × epoch time (no early stopping assumed, so an upper bound). GPU utilisation: after the timed steps, each
segment runs a burst of back-to-back steps (``BURST_SECONDS``) while ``nvidia-smi`` is sampled every 0.1 s (the first
0.3 s of the burst dropped); a stack's figure weights the segments by their share of the epoch's step time.
Writes ``docs/results/frontier_speed.json`` and ``frontier_speed_run.md`` (or under ``--out-dir``).

    python benchmarks/frontier_speed.py [--steps 12] [--presets based-slice based-fig2] [--out-dir docs/results]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import threading
import time
from pathlib import Path

import torch

from mqarkit.gpu.frontier.model import StackedHybrid
from mqarkit.gpu.frontier.optim import StackedAdamW
from mqarkit.gpu.frontier.presets import get_preset
from mqarkit.gpu.frontier.runner import environment, make_data
from mqarkit.gpu.frontier.steps import DEFAULT_BUDGET as BUDGET
from mqarkit.gpu.frontier.steps import query_loss, train_step
from mqarkit.gpu.frontier.sweep import groups
from mqarkit.gpu.frontier.train import evaluate, training_step

BURST_SECONDS = 2.0  # per segment: a burst of back-to-back steps this long is sampled for GPU utilisation


def nvidia_smi_utilisation() -> float | None:
    """``nvidia-smi --query-gpu=utilization.gpu`` of the first GPU (%), or None when it cannot answer."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.split()
        return float(out[0]) if out else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


class UtilSampler(threading.Thread):
    """Samples GPU utilisation every ``period`` s while :attr:`active` is set, as ``(seconds since activation, %)``.

    NVML's utilisation is "the fraction of the last sample window in which a kernel ran", so a reading taken just after
    a burst of work starts still sees the idle time before it: :meth:`burst_mean` drops the first ``settle`` seconds.
    """

    def __init__(self, period: float = 0.1, query=nvidia_smi_utilisation):
        super().__init__(daemon=True)
        self.period, self.query = period, query
        self.samples: list[tuple[float, float]] = []
        self.active, self.stop_flag = threading.Event(), threading.Event()
        self.started_at = 0.0

    def activate(self) -> int:
        """Start a sampling window; returns the index of its first sample."""
        self.started_at = time.perf_counter()
        self.active.set()
        return len(self.samples)

    def run(self) -> None:
        while not self.stop_flag.is_set():
            if self.active.is_set():
                value = self.query()
                if value is not None and self.active.is_set():
                    self.samples.append((time.perf_counter() - self.started_at, value))
            time.sleep(self.period)

    def burst_mean(self, first: int, settle: float = 0.3) -> float | None:
        """Mean of the window's samples (from index ``first``) taken ``settle`` s or more after it started."""
        values = [v for t, v in self.samples[first:] if t >= settle]
        return statistics.mean(values) if values else None


def timer(device: torch.device):
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        return lambda: (end.record(), end.synchronize(), start.elapsed_time(end) / 1e3)[-1]
    t0 = time.perf_counter()
    return lambda: time.perf_counter() - t0


def bench_group(sweep, group, train, test, device, steps: int, gen) -> dict:
    model = StackedHybrid([r.model for r in group], [r.init_seed() for r in group], device)
    opt = StackedAdamW(model, torch.tensor([r.lr for r in group]))
    budget = BUDGET
    take_step = training_step(model, opt, batch_size=sweep.batch_size, budget=budget)
    per_segment = []
    sampler = UtilSampler() if device.type == "cuda" else None
    if sampler is not None:
        sampler.start()
    for seg in train:
        rows = torch.randperm(seg.inputs.shape[0], generator=gen, device=gen.device)[: sweep.batch_size].to(device)
        stop = timer(device)
        take_step(seg, rows, 1.0)  # first step: compilation and CUDA-graph capture of this shape included
        first = stop()
        take_step(seg, rows, 1.0)  # warm-up (allocator, cuBLAS heuristics)
        times = []
        for _ in range(steps):
            stop = timer(device)
            take_step(seg, rows, 1.0)
            times.append(stop())
        util = None
        if sampler is not None:  # utilisation over a sustained burst of back-to-back steps (no host sync between)
            burst_start = sampler.activate()
            for _ in range(max(1, math.ceil(BURST_SECONDS / statistics.median(times)))):
                take_step(seg, rows, 1.0)
            torch.cuda.synchronize(device)
            sampler.active.clear()
            util = sampler.burst_mean(burst_start)
        per_segment.append(
            {
                "seq_len": seg.segment.seq_len,
                "num_kv_pairs": seg.segment.num_kv_pairs,
                "steps_per_epoch": math.ceil(seg.inputs.shape[0] / sweep.batch_size),
                "median_step_s": statistics.median(times),
                "first_step_s": first,
                "gpu_util": util,
            }
        )
    stop = timer(device)
    evaluate(model, test, batch=sweep.test_batch_size, budget=budget, amp=device.type == "cuda")
    eval_first_s = stop()  # compilation of the evaluation shapes included
    stop = timer(device)
    evaluate(model, test, batch=sweep.test_batch_size, budget=budget, amp=device.type == "cuda")
    eval_s = stop()
    if sampler is not None:
        sampler.stop_flag.set()
    epoch_s = sum(s["steps_per_epoch"] * s["median_step_s"] for s in per_segment) + eval_s
    m = group[0].model
    return {
        "family": m.family,
        "d_model": m.d_model,
        "runs": len(group),
        "segments": per_segment,
        "eval_s": eval_s,
        "eval_first_s": eval_first_s,
        "epoch_s": epoch_s,
        "model_epochs_per_s": len(group) / epoch_s,
        "gpu_util_mean": _step_weighted_util(per_segment),
    }


def _step_weighted_util(per_segment: list[dict]) -> float | None:
    """The epoch's GPU utilisation: each segment's burst utilisation weighted by its share of the epoch's step time."""
    parts = [(s["steps_per_epoch"] * s["median_step_s"], s["gpu_util"]) for s in per_segment]
    parts = [(w, u) for w, u in parts if u is not None]
    total = sum(w for w, _ in parts)
    return sum(w * u for w, u in parts) / total if total else None


def profile_group(sweep, group, train, test, device, gen) -> None:
    """Print the kernels of two steps of ``group`` on the shortest and the longest training segment, and one eval."""
    from torch.profiler import ProfilerActivity, profile

    model = StackedHybrid([r.model for r in group], [r.init_seed() for r in group], device)
    opt = StackedAdamW(model, torch.tensor([r.lr for r in group]))
    for seg in (train[0], train[-1]):  # eager steps: a replayed graph shows as one opaque launch
        rows = torch.randperm(seg.inputs.shape[0], generator=gen, device=gen.device)[: sweep.batch_size].to(device)
        train_step(model, opt, seg, rows, 1.0, BUDGET)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=acts) as prof:
            for _ in range(2):
                train_step(model, opt, seg, rows, 1.0, BUDGET)
            if device.type == "cuda":
                torch.cuda.synchronize()
        key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
        print(f"--- profile: {group[0].model.family} d={model.d} R={model.runs} segment {seg.segment} (2 steps)")
        print(prof.key_averages().table(sort_by=key, row_limit=22, max_name_column_width=60))
    with profile(activities=acts) as prof:
        evaluate(model, test, batch=sweep.test_batch_size, budget=BUDGET, amp=device.type == "cuda")
        if device.type == "cuda":
            torch.cuda.synchronize()
    print("--- profile: evaluation")
    print(prof.key_averages().table(sort_by=key, row_limit=12, max_name_column_width=60))
    check_compiled(model, train[-1], device)


def check_compiled(model, seg, device) -> None:
    """Loss and gradients of one batch with the compiled glue against eager (same bf16 autocast): max rel. diff."""
    import os

    x, qpos, tgt = seg.inputs[:64], seg.qpos[:64], seg.targets[:64]
    out = {}
    for flag in ("1", "0"):
        os.environ["MQARKIT_COMPILE"] = flag
        model.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = query_loss(model, x, qpos, tgt, qpos.numel())
        loss.backward()
        out[flag] = (loss.detach().float(), [p.grad.float().clone() for p in model.parameters()])
    os.environ["MQARKIT_COMPILE"] = "1"
    model.zero_grad(set_to_none=True)
    rel = max(float((a - b).norm() / b.norm().clamp_min(1e-30)) for a, b in zip(out["1"][1], out["0"][1]))
    losses = f"{float(out['1'][0]):.6f} vs {float(out['0'][0]):.6f}"
    print(f"--- compiled vs eager: loss {losses}; max rel grad diff {rel:.2e}")


def _util(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--presets", nargs="+", default=["based-slice", "based-fig2"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out-dir", default="docs/results")
    ap.add_argument("--example-scale", type=float, default=1.0, help="shrink the data (CPU smoke runs)")
    ap.add_argument("--profile", action="store_true", help="print the top kernels of one step per segment")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    env = environment(device)
    report = {"env": env, "presets": {}}
    for name in args.presets:
        for sweep in get_preset(name, example_scale=args.example_scale):
            stop = timer(device)
            train, test = make_data(sweep, device)
            data_s = stop()
            gen = torch.Generator(device=device).manual_seed(1)
            stacks = [bench_group(sweep, g, train, test, device, args.steps, gen) for g in groups(sweep)]
            if args.profile:
                profile_group(sweep, groups(sweep)[-1], train, test, device, gen)
            total = data_s + sum(sweep.epochs * s["epoch_s"] for s in stacks)
            report["presets"][sweep.name] = {
                "runs": len(sweep.runs()),
                "epochs": sweep.epochs,
                "data_s": data_s,
                "stacks": stacks,
                "projected_wall_s": total,
            }
            print(
                f"{sweep.name}: {len(sweep.runs())} runs, data {data_s:.1f} s, projected {total:.0f} s "
                f"({sweep.epochs} epochs, no early stop)"
            )
            for s in stacks:
                print(
                    f"  {s['family']:>15} d={s['d_model']:<4} R={s['runs']:<3} epoch {s['epoch_s']:.2f} s  "
                    f"{s['model_epochs_per_s']:.2f} model-epochs/s  util {s['gpu_util_mean']}"
                )
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "frontier_speed.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [
        f"# Frontier harness speed\n\nDevice: {env['device']}; torch {env['torch']}; triton {env['triton']}; "
        f"commit {env['git_commit'][:10]}. Produced by `benchmarks/frontier_speed.py` (CUDA events after 2 "
        "warm-up steps; median of the timed steps per segment; projection assumes no early stopping).\n",
        "Reference harness (theory.md §6): ~13.3 s per epoch per Based run, ~4 GPU-hours for the 36-run slice.\n",
    ]
    for name, p in report["presets"].items():
        lines += [
            f"\n## {name}: {p['runs']} runs, {p['epochs']} epochs; data {p['data_s']:.1f} s; "
            f"projected wall time {p['projected_wall_s']:.0f} s\n",
            "| family | d | runs stacked | epoch (s) | model-epochs/s | GPU util % |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {s['family']} | {s['d_model']} | {s['runs']} | {s['epoch_s']:.2f} | "
            f"{s['model_epochs_per_s']:.2f} | {_util(s['gpu_util_mean'])} |"
            for s in p["stacks"]
        ]
    # The tables of this run; docs/results/frontier_speed.md is the written analysis that cites them (not overwritten).
    (out / "frontier_speed_run.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
