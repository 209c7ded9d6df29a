"""From runs to results: a configuration's accuracy is its mean over seeds, with a 95% bootstrap interval.

A *configuration* is a sweep's model config (family or plain module, width, knobs, ...); its runs differ in learning
rate and seed. For each configuration:

1. runs that diverged (status ``diverged``: a non-finite loss) are left out of the choice and counted;
2. for each learning rate, the mean over its seeds of the run's accuracy (the mean over the test slices,
   :func:`slice_mean_accuracy`, as the reference harness reports a run);
3. the learning rate with the best mean is the configuration's (never the best single run: with several seeds a
   lucky run would otherwise be chosen);
4. at that learning rate: the mean, a percentile bootstrap interval over the seeds (:func:`bootstrap_interval`,
   10,000 resamples from a fixed generator, so a table is reproducible), the number of seeds, and per slice the mean.

With one seed there is no interval (it is reported as the single value, ``seeds = 1``); with three, a percentile
bootstrap interval is the range of the seeds' values (a resample repeating one value has probability 1/27 > 2.5%).
The figure and the tables say how many seeds each point has.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

LEVEL = 0.95  # the interval's coverage
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # the bootstrap's own generator: the same records give the same interval


def slice_mean_accuracy(record: dict) -> float:
    """Mean of the per-slice test accuracies: how the reference harness reports a run (and the frontier's y-axis).

    The records' ``overall_accuracy`` weights every query equally instead, so the longest slice dominates it."""
    return float(np.mean([s["accuracy"] for s in record["accuracy"]]))


def bootstrap_interval(
    values: Sequence[float], *, level: float = LEVEL, resamples: int = RESAMPLES
) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of ``values`` (``(v, v)`` for a single value)."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0 or not np.isfinite(x).all():
        raise ValueError(f"values={list(values)!r}: needs one or more finite numbers")
    if not 0 < level < 1:
        raise ValueError(f"level={level}: needs 0 < level < 1")
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def config_key(record: dict) -> str:
    """What makes runs the same configuration: the sweep and the model config (not the learning rate or the seed)."""
    return record["sweep"] + "|" + json.dumps(record["model"], sort_keys=True)


@dataclass(frozen=True)
class ConfigResult:
    """A configuration at its chosen learning rate: the mean over seeds with its interval."""

    sweep: str
    label: str  # the family, or a plain module's class
    model: dict
    lr: float
    mean: float
    low: float
    high: float
    seeds: int
    diverged: int  # runs of the configuration (any learning rate) that diverged, left out
    state_bytes: int | None
    slice_means: list[dict] = field(default_factory=list)  # per test slice: seq_len, num_kv_pairs, mean
    runs: list[dict] = field(default_factory=list)  # the chosen learning rate's records


BOTH_LAYERS = " (both layers)"  # appended to the label of a model built with layers = "mixer"


def label(record: dict) -> str:
    """The name of a record's mixer: its family, or a plain module's class; with :data:`BOTH_LAYERS` appended for a
    model whose two blocks are both the mixer (``layers = "mixer"``), so that the two topologies of one family are two
    series of a figure, never one."""
    mixer = record["model"].get("mixer")
    name = mixer.split(":")[1] if mixer else record["family"]
    return name + BOTH_LAYERS if record["model"].get("layers") == "mixer" else name


def summarise(records: Iterable[dict]) -> list[ConfigResult]:
    """One :class:`ConfigResult` per configuration that has a run that did not diverge (see the module docstring)."""
    by_config: dict[str, list[dict]] = {}
    for rec in records:
        by_config.setdefault(config_key(rec), []).append(rec)
    out = []
    for runs in by_config.values():
        kept = [r for r in runs if r.get("status", "finished") != "diverged"]
        if not kept:
            continue
        by_lr: dict[float, list[dict]] = {}
        for r in kept:
            by_lr.setdefault(r["lr"], []).append(r)
        lr, chosen = max(by_lr.items(), key=lambda item: (np.mean([slice_mean_accuracy(r) for r in item[1]]), -item[0]))
        accs = [slice_mean_accuracy(r) for r in chosen]
        low, high = bootstrap_interval(accs)
        slices = [
            {
                "seq_len": s["seq_len"],
                "num_kv_pairs": s["num_kv_pairs"],
                "mean": float(np.mean([r["accuracy"][i]["accuracy"] for r in chosen])),
            }
            for i, s in enumerate(chosen[0]["accuracy"])
        ]
        states = {r.get("state_bytes") for r in chosen}
        out.append(
            ConfigResult(
                sweep=chosen[0]["sweep"],
                label=label(chosen[0]),
                model=chosen[0]["model"],
                lr=lr,
                mean=float(np.mean(accs)),
                low=low,
                high=high,
                seeds=len({r.get("seed", 0) for r in chosen}),
                diverged=len(runs) - len(kept),
                state_bytes=states.pop() if len(states) == 1 else None,
                slice_means=slices,
                runs=chosen,
            )
        )
    return out


def markdown_table(results: Sequence[ConfigResult]) -> str:
    """Mean ± interval per configuration, with its seeds, diverged runs, chosen learning rate and state."""
    rows = [
        "| sweep | mixer | model | lr | accuracy (mean over seeds) | 95% interval | seeds | diverged | state (bytes) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r.sweep, r.label, r.state_bytes or 0)):
        knobs = {k: v for k, v in r.model.items() if k not in _COMMON and v is not None and v != {}}
        model = ", ".join(f"{k}={v}" for k, v in sorted(knobs.items()))
        interval = f"[{r.low:.3f}, {r.high:.3f}]" if r.seeds > 1 else "n/a (1 seed)"
        state = "unmeasured" if r.state_bytes is None else f"{r.state_bytes:,}"
        rows.append(
            f"| {r.sweep} | {r.label} | {model} | {r.lr:.2e} | {r.mean:.3f} | {interval} | {r.seeds} | {r.diverged} "
            f"| {state} |"
        )
    return "\n".join(rows) + "\n"


_COMMON = {"family", "mixer", "vocab_size", "max_len", "conv_kernel", "tie_head", "mixer_cache"}
