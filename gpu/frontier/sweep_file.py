"""Sweep files: a sweep (or several) as TOML, checked field by field before anything runs.

One sweep per file::

    name = "my-sweep"
    vocab_size = 64
    epochs = 2
    lrs = [0.003, 0.01]
    seeds = [0, 1, 2]             # one run per seed for every model and learning rate (default [0])
    batch_size = 16
    test_batch_size = 16          # optional fields: data_seed (0), early_stop (0.99), notes ([]),
                                  # max_stack_runs (none: each group of runs one stack), lr_schedule ("step": the
                                  # cosine at every step; "epoch": held within each epoch, as the reference's)

    [[train]]                     # training segments; [[test]] likewise
    seq_len = 16
    num_kv_pairs = 2
    num_examples = 256

    [[models]]                    # a registered family (or "package.module:Class", a StackedMixer) with its knobs
    family = "based"
    d_model = [32, 64]            # a list gives one model per value (d_model and knobs); the product of all lists
    feature_dim = [4, 8]
    max_len = 16                  # optional: the longest sequence of the sweep; conv_kernel (3), tie_head (true)
    layers = "mixer"              # optional: "hybrid" (default: block 0 a short BaseConv, block 1 the mixer) or
                                  # "mixer" (the mixer in both blocks, in the reference's block for the family)

    [[models]]                    # any nn.Module (B, N, d) -> (B, N, d), one model per run
    mixer = "my_package.my_module:MyMixer"
    mixer_kwargs = { expand = 2 }
    d_model = 32                  # optional: mixer_cache = "package.module:Cache" (see user_mixers)

Several sweeps in one file: a ``[[sweeps]]`` table per sweep; every top-level field is a default for each of them
(the shipped ``zoology-fig2`` preset shares its models and learning rates between four data sets this way).

Every error names the file, the entry (``models[2]``, ``sweeps[1].train[0]``) and the rule.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

from mqarkit.gpu.frontier.config import GENERIC, ModelConfig
from mqarkit.gpu.frontier.data import Segment
from mqarkit.gpu.frontier.sweep import SweepConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SWEEP_FIELDS = {
    "name",
    "vocab_size",
    "epochs",
    "lrs",
    "seeds",
    "data_seed",
    "batch_size",
    "test_batch_size",
    "early_stop",
    "lr_schedule",
    "max_stack_runs",
    "notes",
    "train",
    "test",
    "models",
}
REQUIRED = ("name", "epochs", "lrs", "train", "test", "models")
SEGMENT_FIELDS = ("seq_len", "num_kv_pairs", "num_examples")
MODEL_FIELDS = {
    "family",
    "mixer",
    "mixer_kwargs",
    "mixer_cache",
    "d_model",
    "max_len",
    "conv_kernel",
    "tie_head",
    "layers",
}
DEFAULT_VOCAB = 8192


class SweepFileError(ValueError):
    """A sweep file breaks a rule; the message names the file, the entry and the rule."""


def load_sweep_file(path: str | Path) -> list[SweepConfig]:
    """The sweeps of a TOML file, each validated (every rule before any device time is spent)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SweepFileError(f"{p}: cannot read the sweep file ({exc.strerror or exc})") from None
    return parse_sweeps(text, str(p))


def parse_sweeps(text: str, source: str = "<sweep>") -> list[SweepConfig]:
    """The sweeps of TOML ``text``; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepFileError(f"{source}: not valid TOML ({exc})") from None
    if "sweeps" in data:
        entries = data.pop("sweeps")
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            raise SweepFileError(f"{source}: sweeps: needs one or more [[sweeps]] tables")
        tables = [(f"sweeps[{i}]", {**data, **entry}) for i, entry in enumerate(entries)]
    else:
        tables = [("", data)]
    sweeps = [_sweep(table, source, where) for where, table in tables]
    names = [sw.name for sw in sweeps]
    if len(set(names)) != len(names):
        raise SweepFileError(f"{source}: two sweeps are named {sorted(n for n in names if names.count(n) > 1)[0]!r}")
    return sweeps


def _sweep(table: dict[str, Any], source: str, where: str) -> SweepConfig:
    at = f"{source}: {where + ': ' if where else ''}"
    unknown = sorted(set(table) - SWEEP_FIELDS)
    if unknown:
        raise SweepFileError(f"{at}unknown field {unknown[0]!r}; a sweep has {', '.join(sorted(SWEEP_FIELDS))}")
    missing = [f for f in REQUIRED if f not in table]
    if missing:
        raise SweepFileError(f"{at}{missing[0]}: missing (a sweep needs {', '.join(REQUIRED)})")
    vocab = table.get("vocab_size", DEFAULT_VOCAB)
    train = _segments(table["train"], f"{at}train")
    test = _segments(table["test"], f"{at}test")
    longest = max((s.seq_len for s in train + test), default=0)
    if not isinstance(table["models"], list) or not table["models"]:
        raise SweepFileError(f"{at}models: needs one or more [[models]] tables")
    models = []
    for i, entry in enumerate(table["models"]):
        models += _models(entry, vocab, longest, f"{at}models[{i}]")
    scalars = {
        k: table[k]
        for k in (
            "vocab_size",
            "epochs",
            "batch_size",
            "test_batch_size",
            "early_stop",
            "lr_schedule",
            "max_stack_runs",
        )
        if k in table
    }
    lists = {}
    for key in ("lrs", "seeds", "notes"):
        if key in table:
            if not isinstance(table[key], list):
                raise SweepFileError(f"{at}{key}={table[key]!r}: needs a list")
            lists[key] = tuple(table[key])
    if "data_seed" in table:
        scalars["data_seed"] = table["data_seed"]
    sweep = SweepConfig(name=table["name"], models=tuple(models), train=train, test=test, **scalars, **lists)
    try:
        sweep.validate()
    except ValueError as exc:
        raise SweepFileError(f"{at}{exc}") from None
    return sweep


def _segments(value: Any, at: str) -> tuple[Segment, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise SweepFileError(f"{at}: needs one or more tables with {', '.join(SEGMENT_FIELDS)}")
    out = []
    for i, entry in enumerate(value):
        unknown = sorted(set(entry) - set(SEGMENT_FIELDS))
        missing = [f for f in SEGMENT_FIELDS if f not in entry]
        if unknown or missing:
            problem = f"unknown field {unknown[0]!r}" if unknown else f"{missing[0]}: missing"
            raise SweepFileError(f"{at}[{i}]: {problem} (a segment has {', '.join(SEGMENT_FIELDS)})")
        for f in SEGMENT_FIELDS:
            if isinstance(entry[f], bool) or not isinstance(entry[f], int):
                raise SweepFileError(f"{at}[{i}]: {f}={entry[f]!r}: needs an integer")
        out.append(Segment(*(entry[f] for f in SEGMENT_FIELDS)))
    return tuple(out)


def _models(entry: Any, vocab: int, longest: int, at: str) -> list[ModelConfig]:
    """One ``[[models]]`` table: every combination of its list-valued fields, each config checked."""
    if not isinstance(entry, dict):
        raise SweepFileError(f"{at}: needs a table")
    if "mixer" in entry and "family" in entry:
        raise SweepFileError(f"{at}: give family (a StackedMixer) or mixer (a plain nn.Module), not both")
    if "mixer" not in entry and "family" not in entry:
        raise SweepFileError(f"{at}: needs family = '<name>' or mixer = 'package.module:Class'")
    if "d_model" not in entry:
        raise SweepFileError(f"{at}: d_model: missing")
    fixed = {k: v for k, v in entry.items() if k in MODEL_FIELDS}
    knobs = {k: v for k, v in entry.items() if k not in MODEL_FIELDS}
    label = entry.get("mixer") or entry.get("family")
    if "mixer" in entry:
        fixed["family"] = GENERIC
        if knobs:
            first = sorted(knobs)[0]
            raise SweepFileError(f"{at} ({label}): {first}: a plain module takes mixer_kwargs, not knobs")
    elif "mixer_kwargs" in entry or "mixer_cache" in entry:
        raise SweepFileError(
            f"{at} ({label}): mixer_kwargs / mixer_cache: only a plain module (mixer = ...) takes them"
        )
    if "mixer_kwargs" in fixed and not isinstance(fixed["mixer_kwargs"], dict):
        raise SweepFileError(f"{at} ({label}): mixer_kwargs={fixed['mixer_kwargs']!r}: needs a table")
    varying = {"d_model": fixed.pop("d_model"), **knobs}
    axes = {k: (v if isinstance(v, list) else [v]) for k, v in varying.items()}
    empty = [k for k, v in axes.items() if not v]
    if empty:
        raise SweepFileError(f"{at} ({label}): {empty[0]}=[]: needs at least one value")
    fixed.setdefault("max_len", longest)
    family = fixed.pop("family")
    out = []
    for combo in itertools.product(*axes.values()):
        values = dict(zip(axes, combo))
        d_model = values.pop("d_model")
        config = ModelConfig(family, d_model, vocab_size=vocab, knobs=values, **fixed)
        try:
            config.validate()
        except ValueError as exc:
            raise SweepFileError(f"{at} ({label}): {exc}") from None
        out.append(config)
    return out
