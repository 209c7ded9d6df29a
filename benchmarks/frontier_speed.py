"""Frontier-harness speed: model-epochs per second per stack, GPU utilisation, projected wall time per preset.
(One script over 500 lines: its two modes, presets and ``--families``, share the timing core ``bench_group``, the
resumable report and one command line, and the committed tables name this one script.)

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

Families mode (``--families``; issue 16 item 7): for every registered family named (``all``: every one) and every
width of ``--widths``, one stack of ``--runs-per-stack`` runs (default 12, the size of Based's stack in
``based-fig2``: three feature dimensions × four learning rates; the same R for every row, so the rows compare) on the
data of ``--data-preset`` (default ``based-fig2``, the [B] Fig. 2 data), with the knobs its preset stack uses
(:data:`FAMILY_KNOBS`, cycled over the runs, then the preset's learning rates, then seeds), measured by
:func:`bench_group` as above (``--steps`` default 3, no utilisation burst unless ``--burst-seconds``). Based is
always measured, first at each width: the reference row. Then the generic one-model-per-run path
(:class:`~mqarkit.gpu.frontier.user_mixers.ModuleMixer`): the ``--generic`` families' naive references as plain
modules (default attention: the same math as the stacked ``attention`` row) and, where fla imports on a CUDA device,
``fla.layers.DeltaNet`` (last: its kernels autotune on each new shape). Each row runs in a ``try``: an error is
recorded with the row and the next row starts; no row starts after ``--time-budget-s`` (the rest are listed as not
measured); the report is rewritten after every row, so a run cut short keeps what it finished. ``--resume`` keeps the
rows an earlier command measured on the same device and settings. ``--profile`` prints each measured row's top
kernels after its timing (where a family's time goes) and, on CUDA, records the GPU time of each profiled phase by
kernel kind (fla's, ours, inductor's, matmul, FFT, PyTorch's eager kernels: ``mqarkit.gpu.kernel_breakdown``) in the
row and under the table. Writes ``frontier_speed_families.json`` and
``frontier_speed_families.md`` under ``--out-dir``, nothing else.

    python benchmarks/frontier_speed.py --families all --widths 64 128 [--steps 3] [--time-budget-s 400]
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from mqarkit.gpu.frontier.config import GENERIC, ModelConfig
from mqarkit.gpu.frontier.families import FAMILIES
from mqarkit.gpu.frontier.model import StackedHybrid
from mqarkit.gpu.frontier.optim import StackedAdamW
from mqarkit.gpu.frontier.presets import get_preset
from mqarkit.gpu.frontier.projection import row_layers
from mqarkit.gpu.frontier.runner import environment, make_data
from mqarkit.gpu.frontier.steps import DEFAULT_BUDGET as BUDGET
from mqarkit.gpu.frontier.steps import query_loss, train_step
from mqarkit.gpu.frontier.sweep import RunSpec, SweepConfig, groups
from mqarkit.gpu.frontier.train import evaluate, training_step
from mqarkit.gpu.frontier.user_mixers import module_class

BURST_SECONDS = 2.0  # per segment: a burst of back-to-back steps this long is sampled for GPU utilisation


def nvidia_smi_query(field: str) -> str | None:
    """``nvidia-smi --query-gpu=<field>`` of the first GPU (several fields: comma-separated, answered as one
    comma-separated line), or None when it cannot answer."""
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[0].strip() if out and out[0].strip() else None


def nvidia_smi_utilisation() -> float | None:
    """``nvidia-smi --query-gpu=utilization.gpu`` of the first GPU (%), or None when it cannot answer."""
    value = nvidia_smi_query("utilization.gpu")
    try:
        return None if value is None else float(value)
    except ValueError:
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


def bench_group(
    sweep, group, train, test, device, steps: int, gen, burst_seconds: float = BURST_SECONDS, budget: int = BUDGET
) -> dict:
    """``budget``: the micro-batch budget (elements; ``steps.micro_batch``), the harness's by default."""
    model = StackedHybrid([r.model for r in group], [r.init_seed() for r in group], device)
    opt = StackedAdamW(model, torch.tensor([r.lr for r in group]))
    take_step = training_step(model, opt, batch_size=sweep.batch_size, budget=budget)
    per_segment = []
    sampler = UtilSampler() if device.type == "cuda" and burst_seconds > 0 else None
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
            for _ in range(max(1, math.ceil(burst_seconds / statistics.median(times)))):
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
    evaluate(model, test, batch=sweep.test_batch_size, budget=budget)
    eval_first_s = stop()  # compilation of the evaluation shapes included
    stop = timer(device)
    evaluate(model, test, batch=sweep.test_batch_size, budget=budget)
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


def profile_group(sweep, group, train, test, device, gen) -> dict[str, dict[str, float]]:
    """Print the kernels of two steps of ``group`` on the shortest and the longest training segment, and one eval;
    return where their GPU time went, by kernel kind (:func:`~mqarkit.gpu.kernel_breakdown.breakdown`, ms), keyed
    ``"train N=…"`` and ``"evaluation"`` (empty off CUDA)."""
    from torch.profiler import ProfilerActivity, profile

    from mqarkit.gpu.kernel_breakdown import breakdown, shares, triton_kernel_names

    phases = {}  # each profiled phase's events, sorted by kernel kind at the end, when every kernel module is loaded
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
        phases[f"train N={seg.segment.seq_len}"] = prof.key_averages()
    with profile(activities=acts) as prof:
        evaluate(model, test, batch=sweep.test_batch_size, budget=BUDGET)
        if device.type == "cuda":
            torch.cuda.synchronize()
    print("--- profile: evaluation")
    print(prof.key_averages().table(sort_by=key, row_limit=12, max_name_column_width=60))
    phases["evaluation"] = prof.key_averages()
    names = triton_kernel_names()
    kinds = {what: breakdown(events, names) for what, events in phases.items()} if device.type == "cuda" else {}
    for what, ms in kinds.items():
        print(f"--- GPU time by kernel kind, {what}: {ms['total']:.1f} ms: {shares(ms)}")
    check_compiled(model, train[-1], device)
    return kinds


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


# ---------------------------------------------------------------- families mode (issue 16 item 7)
TARGET_WIDTH, TARGET_RATE = 64, 2.5  # every stacked family >= 2.5 model-epochs/s at d = 64 (issue 16 item 7)
DATA_PRESET = "based-fig2"  # the [B] Fig. 2 data: five training segments, seven test slices
# Based's stack in based-fig2 (d' in {8, 16, 24} x 4 learning rates), the stack its 4.9 model-epochs/s was measured on
DEFAULT_RUNS_PER_STACK = 12
FAMILIES_DEFAULT_STEPS = 3  # timed steps per segment in the families mode (a one-shot run of 26+ stacks)
DEFAULT_TIME_BUDGET_S = 400.0
FAMILY_REFERENCE = "mqarkit.gpu.frontier.user_mixers:FamilyReference"
# fla layers through the generic path, with their keyword arguments at width d (as docs/results/fla_delta_net.toml)
FLA_LAYERS: dict[str, Callable[[int], dict]] = {"fla.layers:DeltaNet": lambda d: {"num_heads": max(1, d // 32)}}


def _each(knob: str, values: tuple) -> Callable[[int], list[dict]]:
    return lambda d: [{knob: v} for v in values]


@dataclass(frozen=True)
class FamilyKnobs:
    """The knob settings of a family's benchmark stack at width ``d`` (cycled over the stack's runs) and its topology
    (``layers``, :data:`~mqarkit.gpu.frontier.config.LAYERS`), and where they come from: ``preset`` names the shipped
    preset whose stack of this family they are (None: no preset has one)."""

    preset: str | None
    note: str
    settings: Callable[[int], list[dict]]
    layers: str = "hybrid"


FAMILY_KNOBS: dict[str, FamilyKnobs] = {
    "attention": FamilyKnobs("based-fig2", "no knobs", lambda d: [{}]),
    "based": FamilyKnobs("based-fig2", "feature_dim 8, 16, 24", _each("feature_dim", (8, 16, 24))),
    "sliding_window": FamilyKnobs(
        None, "window 64, one of based-fig2's eight windows (its stack: d = 128 only, 32 runs)", _each("window", (64,))
    ),
    "long_conv": FamilyKnobs("zoology-fig2", "no knobs", lambda d: [{}]),
    "mamba": FamilyKnobs("based-fig2", "d_state 8, 16, 24", _each("d_state", (8, 16, 24)), layers="mixer"),
    "mamba2": FamilyKnobs("modern", "d_state 8, 16, 24", _each("d_state", (8, 16, 24))),
    "rwkv4": FamilyKnobs("zoology-fig2", "no knobs", lambda d: [{}], layers="mixer"),
    "rwkv7": FamilyKnobs(
        None, "head_dim 16 (4 heads at d = 64, the modern preset's head count)", _each("head_dim", (16,))
    ),
    "gla": FamilyKnobs(
        "modern", "4 heads, head_dim 16, 32, 48", lambda d: [{"heads": 4, "head_dim": k} for k in (16, 32, 48)]
    ),
    "delta_net": FamilyKnobs(
        "modern", "4 heads, head_dim 24, 48, 72", lambda d: [{"heads": 4, "head_dim": k} for k in (24, 48, 72)]
    ),
    "gated_delta_net": FamilyKnobs(
        "modern", "4 heads, head_dim 16, 32, 48", lambda d: [{"heads": 4, "head_dim": k} for k in (16, 32, 48)]
    ),
    "h3": FamilyKnobs(
        "based-fig2", "d_state d/4, head_dim 2", lambda d: [{"d_state": d // 4, "head_dim": 2}], layers="mixer"
    ),
    "hyena": FamilyKnobs("based-fig2", "no knobs", lambda d: [{}], layers="mixer"),
}


@dataclass(frozen=True)
class Item:
    """One row of the families table: a stack of one architecture at one width."""

    path: str  # "stacked" (a registered family) or "generic" (one model per run, through ModuleMixer)
    name: str  # the family, "reference:<family>" (its naive form as a plain module) or an fla layer's import path
    d_model: int
    models: tuple[ModelConfig, ...]  # the knob settings, cycled over the stack's runs
    knobs: str  # what the row's knobs are and where they come from
    skip: str | None = None  # why the row is not measured at all (fla absent), else None

    @property
    def label(self) -> str:
        return f"{self.name} d={self.d_model}"


def stack_runs(sweep: SweepConfig, runs: int) -> list[RunSpec]:
    """``runs`` runs of ``sweep``'s models: run ``i`` has model ``i mod M``, learning rate ``(i div M) mod L`` and
    seed ``i div (M·L)``, so a stack of ``M·L`` runs is the preset's stack of those models (each knob setting at each
    learning rate) and a larger one repeats it with other seeds; listed in a sweep's order
    (:meth:`~mqarkit.gpu.frontier.sweep.SweepConfig.runs`: by model, then learning rate, then seed), as the harness
    stacks them (a family that groups its runs by width finds them together, as in a sweep)."""
    m, n_lr = len(sweep.models), len(sweep.lrs)
    chosen = [(i % m, (i // m) % n_lr, i // (m * n_lr)) for i in range(runs)]
    return [RunSpec(sweep.name, sweep.models[model], sweep.lrs[lr], seed) for model, lr, seed in sorted(chosen)]


def fla_unavailable(path: str, device: torch.device) -> str | None:
    """Why the fla layer at ``path`` cannot run here (None: it can): fla absent, not a CUDA device, or the layer does
    not import (a one-shot run skips the row rather than stopping)."""
    if importlib.util.find_spec("fla") is None:
        return "fla (flash-linear-attention) is not importable"
    if device.type != "cuda":
        return f"fla's kernels need a CUDA device (device {device.type})"
    try:
        module_class(path)
    except Exception as exc:  # any import failure of an optional dependency: the row is skipped, and says why
        return f"{path} does not import: {type(exc).__name__}: {exc}"[:500]
    return None


def plan_items(
    families: list[str],
    widths: list[int],
    generic: list[str],
    fla: bool,
    base: SweepConfig,
    device: torch.device,
) -> list[Item]:
    """The rows in the order they are measured (the most wanted first, since a time budget cuts the tail): per width
    ascending, Based (the reference row) then the other families, then the generic rows; the fla layers last."""
    max_len = max(s.seq_len for s in base.train + base.test)
    common = {"vocab_size": base.vocab_size, "max_len": max_len}
    items = []
    for d in widths:
        for name in ["based"] + [f for f in families if f != "based"]:
            entry = FAMILY_KNOBS[name]
            models = tuple(ModelConfig(name, d, knobs=k, layers=entry.layers, **common) for k in entry.settings(d))
            where = f"{entry.preset}: " if entry.preset else ""
            items.append(Item("stacked", name, d, models, where + entry.note))
        for name in generic:
            entry = FAMILY_KNOBS[name]
            knobs = entry.settings(d)[len(entry.settings(d)) // 2]  # the middle setting (one per stack: kwargs)
            kwargs = {"family": name, "max_len": max_len, "knobs": knobs}
            model = ModelConfig(GENERIC, d, mixer=FAMILY_REFERENCE, mixer_kwargs=kwargs, **common)
            note = f"{name}'s naive reference as a plain module; " + (
                ", ".join(f"{k} {v}" for k, v in knobs.items()) or "no knobs"
            )
            items.append(Item("generic", f"reference:{name}", d, (model,), note))
    if fla:
        for path, make_kwargs in FLA_LAYERS.items():
            why = fla_unavailable(path, device)
            for d in widths:
                kwargs = make_kwargs(d)
                model = None if why else ModelConfig(GENERIC, d, mixer=path, mixer_kwargs=kwargs, **common)
                note = ", ".join(f"{k} {v}" for k, v in kwargs.items())
                items.append(Item("generic", path, d, (model,) if model else (), note, skip=why))
    return items


def item_sweep(base: SweepConfig, item: Item, runs: int) -> SweepConfig:
    """``base``'s data and learning rates with ``item``'s models, seeds enough for ``runs`` runs; validated (a
    ``ValueError`` naming the row and the rule, before any device time is spent)."""
    seeds = tuple(range(math.ceil(runs / (len(item.models) * len(base.lrs)))))
    slug = item.name.replace(":", "-").replace(".", "-")
    sweep = replace(base, name=f"speed-{slug}-d{item.d_model}", models=item.models, seeds=seeds)
    try:
        sweep.validate()
    except ValueError as exc:
        raise ValueError(f"--families/--widths/--generic: {item.label} cannot be built: {exc}") from None
    return sweep


def target_mark(row: dict, example_scale: float) -> bool | None:
    """Whether a stacked row at the target width meets the target; None where the target does not apply (another
    width, the generic path, not measured, or shrunken data whose epochs are not the preset's)."""
    applies = row["path"] == "stacked" and row["d_model"] == TARGET_WIDTH and example_scale == 1.0
    if not applies or row.get("model_epochs_per_s") is None:
        return None
    return row["model_epochs_per_s"] >= TARGET_RATE


def measure_item(
    item: Item, sweep: SweepConfig, runs: int, data, device, steps: int, burst_seconds: float, budget: int = BUDGET
) -> dict:
    """One row: :func:`bench_group` on a stack of ``runs`` runs of ``item``. A stack that runs out of device memory is
    measured again with half its runs (the first half, one more where odd), down to one run: the row's ``runs`` and
    ``knob_settings`` are what it measured, ``out_of_memory_at_runs`` the sizes that did not fit. Any other error is
    recorded, not raised."""
    started, too_large = time.perf_counter(), []
    while True:
        row, ran_out = _measure_stack(item, sweep, runs, data, device, steps, burst_seconds, budget)
        if ran_out and runs > 1:
            too_large.append(runs)
            print(
                f"  {item.label}: out of device memory at {runs} runs; measured again at {(runs + 1) // 2}", flush=True
            )
            runs = (runs + 1) // 2
            continue
        break
    if too_large:
        row["out_of_memory_at_runs"] = too_large
    row["wall_s"] = time.perf_counter() - started
    return row


def _measure_stack(
    item: Item, sweep: SweepConfig, runs: int, data, device, steps: int, burst_seconds: float, budget: int
) -> tuple[dict, bool]:
    """:func:`measure_item`'s one attempt at ``runs`` runs: its row, and whether it failed by running out of memory."""
    group = stack_runs(sweep, runs)
    row = {"status": "measured", "error": None, "runs": runs}
    row["knob_settings"] = knob_settings(dict.fromkeys(r.model for r in group))
    ran_out = False
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        gen = torch.Generator(device=device).manual_seed(1)
        res = bench_group(sweep, group, data[0], data[1], device, steps, gen, burst_seconds, budget)
        row |= res
        row["first_steps_s"] = sum(s["first_step_s"] for s in res["segments"])
        if device.type == "cuda":
            row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    except Exception as exc:  # a one-shot run records the failure and goes on with the next row
        row |= {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:1000]}
        ran_out = isinstance(exc, torch.OutOfMemoryError)
        row["traceback_tail"] = traceback.format_exc()[-3000:]
    finally:
        _release(device)
    return row, ran_out


def profile_item(sweep: SweepConfig, runs: int, data, device: torch.device) -> dict[str, dict[str, float]] | None:
    """``--profile`` in the families mode: :func:`profile_group` on the row's stack, its GPU time by kernel kind
    returned for the row (None where it failed: a failure is printed, not raised, the row's figures are already
    written)."""
    try:
        gen = torch.Generator(device=device).manual_seed(1)
        return profile_group(sweep, stack_runs(sweep, runs), data[0], data[1], device, gen)
    except Exception as exc:
        print(f"--- profile failed: {type(exc).__name__}: {exc}"[:1000], flush=True)
        return None
    finally:
        _release(device)


def _release(device: torch.device) -> None:
    """Free what a row left behind (its CUDA graphs' pools, its compiled variants) before the next row."""
    gc.collect()
    torch._dynamo.reset()  # each row compiles afresh, as a new worker would; dynamo's variant limit is not reached
    if device.type == "cuda":
        try:
            torch.cuda.synchronize(device)
            torch.cuda.empty_cache()
        except Exception:  # a sticky CUDA error is already recorded in the row that caused it
            pass


def fla_version() -> str | None:
    for dist in ("fla-core", "flash-linear-attention"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def triton_cache_files() -> int:
    """Files in Triton's cache (``TRITON_CACHE_DIR``, else ``~/.triton/cache``) now: compiled kernels and fla's
    autotuning results. 0 at a cold start; first steps after a warm one compile and tune less."""
    root = Path(os.environ.get("TRITON_CACHE_DIR") or Path.home() / ".triton" / "cache")
    return sum(len(files) for _, _, files in os.walk(root)) if root.is_dir() else 0


def families_environment(device: torch.device) -> dict:
    """:func:`environment`'s record plus the driver, fla's version, whether fla's gated backward is refused and who
    computes its refused kernel (:func:`~mqarkit.gpu.frontier.kernels.fla_common.gated_backward`), and how warm
    Triton's cache was when the command began."""
    from mqarkit.gpu.frontier.kernels.fla_common import gated_backward, gated_backward_refused
    from mqarkit.gpu.frontier.kernels.fla_delta import compile_trial, gated_switch
    from mqarkit.gpu.frontier.kernels.sequential_scan import sequential_chosen

    env = environment(device)
    env["driver"] = nvidia_smi_query("driver_version") if device.type == "cuda" else None
    env["fla"] = fla_version()
    env["fla_gated_backward_refused"] = gated_backward_refused() if device.type == "cuda" else None
    env["fla_gated_backward"] = gated_backward() if device.type == "cuda" else None  # who computes it: fla, torch
    env["triton_cache_files_at_start"] = triton_cache_files()
    env["fla_gated_delta_rule_switch"] = gated_switch()  # MQARKIT_FLA_GATED_DELTA_RULE: "0", "dplr" or None
    env["delta_rule_compile_trial"] = compile_trial()  # MQARKIT_COMPILE_DELTA_RULE: the delta rules' steps compiled
    env["sequential_scan"] = sequential_chosen()  # MQARKIT_SCAN=sequential: Mamba's sequential trial kernels
    return env


def knob_settings(models) -> list[dict]:
    """What a row says its stack measured: each model's knob settings (a plain module's keywords), in order."""
    return [m.knob_dict() or m.kwargs() for m in models]


def _row_base(item: Item, runs: int) -> dict:
    return {
        "path": item.path,
        "name": item.name,
        "family": item.models[0].family if item.models else "module",
        "d_model": item.d_model,
        "runs": runs,
        "knobs": item.knobs,
        "knob_settings": knob_settings(item.models),
        "layers": item.models[0].layers if item.models else None,
    }


def same_models(row: dict, item: Item, runs: int) -> bool:
    """Whether an earlier row measured the stack ``item`` plans: the same knob settings and topology (a row measured
    at fewer runs, after running out of memory, holds the first of them: one a run up to all)."""
    planned = _row_base(item, runs)
    knobs = planned["knob_settings"][: min(len(planned["knob_settings"]), row["runs"])]
    return row["knob_settings"] == knobs and row_layers(row) == planned["layers"]


def run_families(args, device: torch.device, argv: list[str]) -> dict:
    """The families mode: every row of :func:`plan_items` measured on the preset's data; the report written after
    each row (so a run cut short still leaves the rows it finished)."""
    started = time.perf_counter()
    out = Path(args.out_dir)
    sweeps = get_preset(args.data_preset, example_scale=args.example_scale)
    if len(sweeps) != 1:
        raise ValueError(f"--data-preset={args.data_preset!r}: needs a preset of one sweep, it has {len(sweeps)}")
    base = sweeps[0]
    items = plan_items(args.families, args.widths, args.generic, args.fla, base, device)
    swept = {item: item_sweep(base, item, args.runs_per_stack) for item in items if not item.skip}
    env = families_environment(device)
    report = {
        "env": env,
        "command": "python benchmarks/frontier_speed.py " + " ".join(argv),
        "settings": {
            "data_preset": args.data_preset,
            "example_scale": args.example_scale,
            "lrs": list(base.lrs),
            "batch_size": base.batch_size,
            "runs_per_stack": args.runs_per_stack,
            "steps": args.steps,
            "widths": args.widths,
            "families": args.families,
            "generic": args.generic,
            "fla": args.fla,
            "time_budget_s": args.time_budget_s,
            "burst_seconds": args.burst_seconds,
            "micro_batch_budget": args.budget,
            "target": {"d_model": TARGET_WIDTH, "model_epochs_per_s": TARGET_RATE},
        },
        "rows": [],
        "not_measured": [],
        "superseded": [],
    }
    before = earlier_rows(out, report) if args.resume else {}  # checked before any work
    earlier = {key: row for key, row in before.items() if row["status"] == "measured"}
    planned = {(item.path, item.name, item.d_model) for item in items}
    # --remeasure: the family's rows this command plans (its --widths) are set aside; its others stay as they are
    again = [key for key in earlier if key in planned and key[0] == "stacked" and key[1] in args.remeasure]
    report["superseded"] += [earlier.pop(key) | {"superseded_by": report["command"]} for key in again]
    # an earlier row of other models (knobs or topology changed since) is set aside and measured again, never resumed
    items_by_key = {(item.path, item.name, item.d_model): item for item in items}
    changed = [k for k in earlier if k in planned and not same_models(earlier[k], items_by_key[k], args.runs_per_stack)]
    report["superseded"] += [
        earlier.pop(key) | {"superseded_by": report["command"], "superseded_why": "other models than the plan's"}
        for key in changed
    ]
    # a resume whose plan is narrower (other --families or --widths) keeps the earlier rows outside it, first
    report["rows"] = [outside_the_plan(row) for key, row in before.items() if key not in planned]
    report["not_measured"] += [
        f"{r['name']} d={r['d_model']}: {r['status']} ({r['error']})"
        for r in report["rows"]
        if r["status"] != "measured"
    ]
    # rows an earlier command ended in go last (a stable sort): one whose first steps outlast a command's limit
    # then holds up no other row
    items.sort(key=lambda item: item.label in report.get("interrupted", ()))
    print(f"families mode on {env['device']}: {len(items)} rows, budget {args.time_budget_s:.0f} s", flush=True)
    stop = timer(device)
    data = make_data(base, device)
    report["data_s"] = stop()
    print(f"data ({args.data_preset}, examples x{args.example_scale}): {report['data_s']:.1f} s", flush=True)
    for index, item in enumerate(items):
        row = _row_base(item, args.runs_per_stack)
        elapsed = time.perf_counter() - started
        key = (row["path"], row["name"], row["d_model"])
        if key in earlier:
            row = earlier[key] | {"resumed": True}
        elif item.skip:
            row |= {"status": "skipped", "error": item.skip}
        elif elapsed > args.time_budget_s and key in again:  # --remeasure not reached: the earlier figure stands
            row = unsupersede(report, key)
        elif elapsed > args.time_budget_s:
            row |= {"status": "not measured", "error": f"time budget: {elapsed:.0f} s > {args.time_budget_s:.0f} s"}
        else:  # written first as "running", the rows after it as "not reached": a command killed at its limit
            # leaves the row it was measuring, and those it never began, named in the table
            done = len(report["rows"])
            report["rows"].append(row | {"status": "running", "error": None, "meets_target": None})
            report["rows"] += [
                _row_base(later, args.runs_per_stack) | {"status": "not reached", "error": None, "meets_target": None}
                for later in items[index + 1 :]
            ]
            write_families_report(report, out)
            del report["rows"][done:]
            row |= measure_item(
                item, swept[item], args.runs_per_stack, data, device, args.steps, args.burst_seconds, args.budget
            )
            row["code"] = {k: env.get(k) for k in ("git_commit", "git_dirty", "source_digest")}  # rows may be resumed
            row["switches"] = switches_set(env)  # a resumed table's rows may come from commands under other switches
            if args.profile and row["status"] == "measured":  # after the timing, so it changes no figure
                row["profile"] = profile_item(swept[item], row["runs"], data, device)
        row["meets_target"] = target_mark(row, args.example_scale)
        report["rows"].append(row)
        if row["status"] != "measured":
            report["not_measured"].append(f"{item.label}: {row['status']} ({row['error']})")
        report["elapsed_s"] = time.perf_counter() - started
        write_families_report(report, out)
        print(_row_line(row), flush=True)
    return report


def unsupersede(report: dict, key: tuple) -> dict:
    """A row set aside by ``--remeasure`` that this command did not begin (its time budget): taken back out of
    ``report["superseded"]`` (the last entry for ``key``, the one this command set aside) and kept as measured,
    marked resumed, so that a command that runs out of time loses no figure."""
    index = max(i for i, r in enumerate(report["superseded"]) if (r["path"], r["name"], r["d_model"]) == key)
    row = report["superseded"].pop(index)
    del row["superseded_by"]
    return row | {"resumed": True}


RESUME_SETTINGS = ("data_preset", "example_scale", "runs_per_stack", "steps", "batch_size", "micro_batch_budget")
RESUME_DEFAULTS = {"micro_batch_budget": BUDGET}  # what a table written before a setting existed was measured with


def earlier_rows(out: Path, report: dict) -> dict[tuple, dict]:
    """``--resume``: the rows of the report already in ``out``, by ``(path, name, d_model)``, if it was measured on
    the same device with the same settings (else a ``ValueError`` naming the difference). Its measured rows are kept;
    a row an earlier command was measuring when it ended (status ``running``) is measured again, after every row not
    yet begun, and listed in ``report["interrupted"]``.
    """
    path = out / "frontier_speed_families.json"
    if not path.exists():
        return {}
    before = json.loads(path.read_text())
    differ = [k for k in RESUME_SETTINGS if before["settings"].get(k, RESUME_DEFAULTS.get(k)) != report["settings"][k]]
    if before["env"].get("device") != report["env"]["device"]:
        differ.append("device")
    if differ:
        raise ValueError(f"--resume: {path} was measured with other {', '.join(differ)}; measure afresh elsewhere")
    report["resumed_from"] = before.get("resumed_from", []) + [before["command"]]
    report["superseded"] = before.get("superseded", []) + report["superseded"]
    report["interrupted"] = before.get("interrupted", []) + [
        f"{r['name']} d={r['d_model']}" for r in before["rows"] if r["status"] == "running"
    ]
    return {(r["path"], r["name"], r["d_model"]): r for r in before["rows"]}


# a row an earlier command left unfinished, outside a later command's plan: what the table says of it
UNFINISHED = ("running", "not reached", "not measured")


def outside_the_plan(row: dict) -> dict:
    """An earlier row that a narrower ``--resume`` does not plan: kept as measured (marked resumed), as superseded,
    failed or skipped; one left unfinished becomes ``not measured``, naming why."""
    if row["status"] == "measured":
        return row | {"resumed": True}
    if row["status"] in UNFINISHED:
        return row | {"status": "not measured", "error": "outside the plan of the commands since", "meets_target": None}
    return row


def _row_line(row: dict) -> str:
    head = f"  {row['path']:>7} {row['name']:>22} d={row['d_model']:<4} R={row['runs']:<3}"
    if row["status"] != "measured":
        return f"{head} {row['status']}: {row['error']}"
    first = row["first_steps_s"] + row["eval_first_s"]
    return (
        f"{head} epoch {row['epoch_s']:.2f} s  {row['model_epochs_per_s']:.2f} model-epochs/s  "
        f"first steps + first eval {first:.1f} s  (row {row['wall_s']:.1f} s)"
    )


def _based_rate(rows: list[dict], d: int) -> float | None:
    return next(
        (
            r["model_epochs_per_s"]
            for r in rows
            if r["name"] == "based" and r["d_model"] == d and r["status"] == "measured"
        ),
        None,
    )


# how the table names the rows a command killed at its time limit left unfinished
ENDED_STATUS = {"running": "running when the command ended", "not reached": "not reached when the command ended"}


def _budget_said(settings: dict) -> str:
    """A micro-batch budget other than the harness's, for the table's data line ("" for the harness's)."""
    budget = settings.get("micro_batch_budget", BUDGET)
    return "" if budget == BUDGET else f", micro-batch budget {budget} elements (the harness's: {BUDGET})"


def switches_set(env: dict) -> list[str]:
    """The harness's switches a command ran under away from their defaults (the gated delta rule's route where fla
    refuses its gated backward, the delta rules' compile trial, Mamba's sequential scan), as ``NAME=value``."""
    from mqarkit.gpu.frontier.kernels.fla_delta import COMPILE_SWITCH, GATED_SWITCH
    from mqarkit.gpu.frontier.kernels.sequential_scan import SWITCH as SCAN_SWITCH

    on = []
    if env.get("fla_gated_delta_rule_switch"):
        on.append(f"{GATED_SWITCH}={env['fla_gated_delta_rule_switch']}")
    if env.get("delta_rule_compile_trial"):
        on.append(f"{COMPILE_SWITCH}=1")
    if env.get("sequential_scan"):
        on.append(f"{SCAN_SWITCH}=sequential")
    return on


def _switches_said(env: dict) -> str:
    """The switches a command ran under, for the table's first line ("" when none was set)."""
    on = switches_set(env)
    return f"; switches set: {', '.join(on)}" if on else ""


def _row_order(row: dict) -> tuple:
    """The table's order: by width, the stacked rows before the generic ones, then the registry's order of families
    (the JSON keeps the order the commands measured them in)."""
    families = list(FAMILIES)
    rank = families.index(row["family"]) if row["family"] in families else len(families)
    return (row["d_model"], row["path"] != "stacked", rank, row["name"])


def write_families_report(report: dict, out: Path) -> None:
    """``frontier_speed_families.json`` (everything) and ``frontier_speed_families.md`` (the table) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "frontier_speed_families.json").write_text(json.dumps(report, indent=1) + "\n")
    env, st = report["env"], report["settings"]
    dirty = " (uncommitted changes)" if env.get("git_dirty") else ""
    scaled = "" if st["example_scale"] == 1.0 else f", examples x{st['example_scale']} (epochs are not the preset's)"
    lines = [
        "# Frontier harness speed: every family beside Based\n",
        f"Device: {env['device']} (driver {env.get('driver') or 'n/a'}); torch {env['torch']}; triton "
        f"{env['triton'] or 'n/a'}; fla {env['fla'] or 'not installed'}"
        + (
            ""
            if env.get("fla_gated_backward_refused") is None
            else f" (gated backward refused here: {env['fla_gated_backward_refused']}"
            + (f"; computed by: {env['fla_gated_backward']})" if "fla_gated_backward" in env else ")")
        )
        + f"; commit {env['git_commit'][:10]}{dirty}"
        + (f", sources {env['source_digest'][:19]}…" if env.get("source_digest") else "")
        + (
            f"; Triton's cache held {env['triton_cache_files_at_start']} files when this command began"
            if "triton_cache_files_at_start" in env
            else ""
        )
        + _switches_said(env)
        + f". Command: `{report['command']}`.\n",
        f"Data: `{st['data_preset']}`{scaled}{_budget_said(st)}, generated in "
        f"{report.get('data_s', float('nan')):.1f} s. Each row: a "
        f"stack of {st['runs_per_stack']} runs (the knob settings cycled, then the {len(st['lrs'])} learning rates, "
        f"then seeds; stacked in a sweep's order, by model), batch {st['batch_size']}; per training segment the first "
        f"step timed apart (compilation, graph capture), one warm-up, the median of {st['steps']} timed steps; one "
        "evaluation of the test slices timed warm (its first call apart). Epoch = Σ segments' median step × steps per "
        f"epoch + evaluation; model-epochs/s = runs / epoch. Target (issue 16 item 7): every stacked family ≥ "
        f"{TARGET_RATE} model-epochs/s at "
        f"d = {TARGET_WIDTH}.\n",
        "| path | family / module | d | runs | knobs | layers | epoch (s) | model-epochs/s | × Based (same d) | "
        f"≥ {TARGET_RATE} at d = {TARGET_WIDTH} | first steps (s) | first eval (s) | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(report["rows"], key=_row_order):
        mark = {True: "**yes**", False: "no", None: "–"}[r["meets_target"]]
        if r["status"] == "measured":
            based = _based_rate(report["rows"], r["d_model"])
            ratio = "–" if based is None else f"{r['model_epochs_per_s'] / based:.2f}"
            smaller = r.get("out_of_memory_at_runs")
            status = f"measured (out of memory at {', '.join(map(str, smaller))} runs)" if smaller else "measured"
            nums = (
                f"{r['epoch_s']:.2f} | {r['model_epochs_per_s']:.2f} | {ratio} | {mark} | {r['first_steps_s']:.1f} | "
                f"{r['eval_first_s']:.1f} | {status}"
            )
        else:
            status = ENDED_STATUS.get(r["status"], r["status"])
            nums = f"– | – | – | {mark} | – | – | {status}"
        resumed = " (resumed)" if r.get("resumed") else ""
        under = "".join(f" under `{x}`" for x in r.get("switches") or ())
        lines.append(
            f"| {r['path']} | `{r['name']}`{resumed}{under} | {r['d_model']} | {r['runs']} | {r['knobs']} | "
            f"{row_layers(r) or '–'} | {nums} |"
        )
    measured = sum(r["status"] == "measured" for r in report["rows"])
    lines.append(f"\n{measured} of {len(report['rows'])} rows measured.")
    if report.get("resumed_from"):
        lines += [
            "\nRows marked resumed were measured by an earlier command on the same device and settings (each "
            "row's `code` in the JSON):\n"
        ] + [f"- `{c}`" for c in report["resumed_from"]]
    if report.get("interrupted"):
        lines += ["\nMeasured again because an earlier command ended while measuring them (its time limit):\n"]
        times = Counter(report["interrupted"])  # a row may have outlasted several commands
        lines += [f"- {x}" + (f" ({n} commands)" if n > 1 else "") for x, n in times.items()]
    if report["not_measured"]:
        lines += ["\nNot measured:\n"] + [f"- {x}" for x in report["not_measured"]]
    if report.get("superseded"):
        lines += [
            "\nSuperseded (measured again by a later command: `--remeasure`, or the plan's models changed; the earlier "
            "figures):\n"
        ] + [
            f"- {r['name']} d={r['d_model']} (layers {row_layers(r)}): {r['model_epochs_per_s']:.2f} model-epochs/s "
            f"(code {(r.get('code') or {}).get('git_commit', '?')[:10]}"
            + (f"; {r['superseded_why']}" if r.get("superseded_why") else "")
            + ")"
            for r in report["superseded"]
        ]
    lines += profile_lines(report["rows"])
    (out / "frontier_speed_families.md").write_text("\n".join(lines) + "\n")


def profile_lines(rows: list[dict]) -> list[str]:
    """The table's section on the rows profiled (``--profile``): each profiled phase's GPU time (two eager training
    steps per segment, one evaluation) and its shares by kernel kind; nothing if no row has a profile."""
    from mqarkit.gpu.kernel_breakdown import shares

    profiled = [r for r in rows if r.get("profile")]
    if not profiled:
        return []
    lines = [
        "\nWhere the GPU time of a profiled row goes (`--profile`: two eager training steps on the shortest and the "
        "longest training segment, one evaluation; CUDA kernels by kind, `mqarkit.gpu.kernel_breakdown`):\n"
    ]
    for r in profiled:
        for what, ms in r["profile"].items():
            lines.append(f"- {r['name']} d={r['d_model']}, {what}: {ms['total']:.1f} ms: {shares(ms)}")
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line, checked: a ``ValueError`` naming the option and its rule for bad input."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"timed steps per segment (default 12; {FAMILIES_DEFAULT_STEPS} with --families)",
    )
    ap.add_argument("--presets", nargs="+", default=None, help="preset mode (default: based-slice based-fig2)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out-dir", default="docs/results")
    ap.add_argument("--example-scale", type=float, default=1.0, help="shrink the data (CPU smoke runs)")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="print the top kernels of two steps on the shortest and the longest segment and of one evaluation "
        "(preset mode: the last stack; families mode: each measured row's stack, after its timing, its GPU time by "
        "kernel kind recorded in the row and the table)",
    )
    fam = ap.add_argument_group("families mode: one stack per family and width, beside Based, on one preset's data")
    fam.add_argument("--families", nargs="+", default=None, help="'all' or registered family names")
    fam.add_argument("--widths", nargs="+", type=int, default=[64, 128], help="d_model values (default 64 128)")
    fam.add_argument(
        "--runs-per-stack",
        type=int,
        default=DEFAULT_RUNS_PER_STACK,
        help=f"R (default {DEFAULT_RUNS_PER_STACK}: Based's based-fig2 stack, 3 feature dims x 4 learning rates)",
    )
    fam.add_argument(
        "--generic",
        nargs="*",
        default=["attention"],
        help="families whose naive reference runs through the generic one-model-per-run path (default attention; "
        "none: give the option without names)",
    )
    fam.add_argument(
        "--fla",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fla's DeltaNet (generic path) where fla imports",
    )
    fam.add_argument("--data-preset", default=DATA_PRESET, help=f"a preset of one sweep (default {DATA_PRESET})")
    fam.add_argument(
        "--time-budget-s",
        type=float,
        default=DEFAULT_TIME_BUDGET_S,
        help=f"no new row starts after this many seconds (default {DEFAULT_TIME_BUDGET_S:.0f}); the rows left are "
        "listed as not measured",
    )
    fam.add_argument(
        "--remeasure",
        nargs="+",
        default=[],
        metavar="FAMILY",
        help="with --resume: measure these families' stacked rows again although an earlier command measured them "
        "(after their code changed); the earlier rows are kept in the report as superseded",
    )
    fam.add_argument(
        "--micro-batch-budget",
        dest="budget",
        type=int,
        default=BUDGET,
        help=f"elements a micro-batch's mixer intermediates may hold (default {BUDGET}, the harness's: "
        "steps.micro_batch); smaller splits long segments into more micro-batches, for a path the estimate "
        "undercounts",
    )
    fam.add_argument(
        "--burst-seconds", type=float, default=0.0, help="GPU-utilisation burst per segment (default 0: none)"
    )
    fam.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows measured by an earlier command in --out-dir (same device and settings) and measure the "
        "rest: the table spread over several commands",
    )
    args = ap.parse_args(argv)
    if args.families is None:
        if args.resume:
            raise ValueError("--resume: belongs to the families mode (--families)")
        if args.budget != BUDGET:
            raise ValueError("--micro-batch-budget: belongs to the families mode (--families)")
        if args.remeasure:
            raise ValueError("--remeasure: belongs to the families mode (--families)")
        args.presets = args.presets or ["based-slice", "based-fig2"]
        args.steps = 12 if args.steps is None else args.steps
    else:
        check_families_args(args)
    if args.steps < 1:
        raise ValueError(f"--steps={args.steps}: needs an integer >= 1")
    return args


def check_families_args(args: argparse.Namespace) -> None:
    """The families mode's options (``args.families`` expanded from 'all'); a ``ValueError`` naming the option."""
    if args.presets is not None:
        raise ValueError("--families: a mode of its own; --presets belongs to the preset mode")
    if args.families == ["all"]:
        args.families = list(FAMILIES)
    for option, names in (("--families", args.families), ("--generic", args.generic)):
        unknown = [f for f in names if f not in FAMILIES]
        if unknown:
            raise ValueError(
                f"{option}={names}: {unknown} not registered; choose from {', '.join(FAMILIES)} (or 'all')"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"{option}={names}: names a family twice")
    if any(w < 1 for w in args.widths) or len(set(args.widths)) != len(args.widths):
        raise ValueError(f"--widths={args.widths}: needs distinct integers >= 1")
    args.widths = sorted(args.widths)
    if args.runs_per_stack < 1:
        raise ValueError(f"--runs-per-stack={args.runs_per_stack}: needs an integer >= 1")
    if not (args.time_budget_s > 0 and math.isfinite(args.time_budget_s)):
        raise ValueError(f"--time-budget-s={args.time_budget_s}: needs a finite number > 0")
    if args.budget < 1:
        raise ValueError(f"--micro-batch-budget={args.budget}: needs an integer >= 1")
    if args.remeasure and not args.resume:
        raise ValueError("--remeasure: only with --resume (without it every row is measured)")
    unplanned = [f for f in args.remeasure if f not in args.families]
    if unplanned:
        raise ValueError(f"--remeasure={args.remeasure}: {unplanned} not among --families {args.families}")
    if not (args.burst_seconds >= 0 and math.isfinite(args.burst_seconds)):
        raise ValueError(f"--burst-seconds={args.burst_seconds}: needs a finite number >= 0")
    args.steps = FAMILIES_DEFAULT_STEPS if args.steps is None else args.steps


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.families is not None:
        run_families(args, device, argv)
        return 0
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
