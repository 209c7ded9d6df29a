"""A sweep: one data set (training and test segments) and the runs trained on it (a model config x a learning rate).

Runs of one sweep that share :meth:`ModelConfig.stack_key` form a *group* trained as one stacked computation, or, given
``max_stack_runs``, as several: the group in the sweep's order cut into consecutive stacks of that many runs (the last
the rest), the same cut whichever of its runs are still to train (so an interrupted stack resumes as the same stack).
Reproducibility: the data depend on ``data_seed`` only; a run's initial weights on its ``run_id`` (which holds its
seed) only; the batch order of a group on ``data_seed`` and the group key, whatever stack of the group a run trains
in; so a run gets the same result whichever worker trains it (up to the last bits where a smaller stack's matmul
shapes and micro-batches sum in another order).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace

from mqarkit.gpu.frontier.config import ModelConfig
from mqarkit.gpu.frontier.data import Segment

# The cosine schedule's two forms: followed at every step (ours, the default), or held within each epoch at the
# epoch's start (the reference harness's CosineAnnealingLR, stepped after each epoch); train.lr_factor computes both.
LR_SCHEDULES = ("step", "epoch")


def check_lr_schedule(value: object, name: str = "lr_schedule") -> None:
    """The schedule's rule, one of :data:`LR_SCHEDULES`; the error names ``name``, the parameter that held ``value``."""
    if value not in LR_SCHEDULES:
        raise ValueError(f"{name}={value!r}: needs one of {', '.join(LR_SCHEDULES)}")


STATE_BYTES_PER_NUMBER = 4  # the unit of the reference (float32); records give numbers and bytes


@dataclass(frozen=True)
class RunSpec:
    """One run: a model config trained at one learning rate from one seed, in one sweep."""

    sweep: str
    model: ModelConfig
    lr: float
    seed: int

    @property
    def run_id(self) -> str:
        """``<sweep>/<architecture>-lr<lr>-s<seed>``, e.g. ``based-slice/based-d64-f16-lr3.162e-03-s0``."""
        return f"{self.sweep}/{self.model.label()}-lr{self.lr:.3e}-s{self.seed}"

    def init_seed(self) -> int:
        """The seed of the run's initial weights: a hash of its id (so it depends on nothing else)."""
        return int.from_bytes(hashlib.sha256(self.run_id.encode()).digest()[:7], "little")


@dataclass(frozen=True)
class SweepConfig:
    """A data set and the runs trained on it: every model × learning rate × seed.

    ``seeds``: one run per seed for every model and learning rate; a seed sets the run's initial weights (through its
    run id). The data (from ``data_seed``) and the batch order (from ``data_seed`` and the stack) are the sweep's,
    shared by every run of a stack. ``notes``: the reductions made from the sweep as shipped (recorded with each run).
    ``max_stack_runs``: the most runs trained as one stack (None: a whole group); not a reduction, every run trains
    at its budget: smaller stacks need less device memory and finish within shorter commands.
    """

    name: str
    models: tuple[ModelConfig, ...]
    lrs: tuple[float, ...]
    epochs: int
    train: tuple[Segment, ...]
    test: tuple[Segment, ...]
    vocab_size: int = 8192
    batch_size: int = 256
    test_batch_size: int = 256
    seeds: tuple[int, ...] = (0,)
    data_seed: int = 0
    early_stop: float = 0.99
    lr_schedule: str = "step"
    notes: tuple[str, ...] = field(default=())
    max_stack_runs: int | None = None

    def validate(self) -> None:
        """Every rule checked before any device time is spent; errors name the sweep, the field and the rule."""
        try:
            self._validate()
        except ValueError as exc:
            raise ValueError(f"sweep {self.name!r}: {exc}") from None

    def _validate(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ValueError(f"name={self.name!r}: needs a non-empty name without '/'")
        if not self.models:
            raise ValueError("models: the sweep has no models")
        if not self.lrs or any(not _is_number(lr) or not (lr > 0 and math.isfinite(lr)) for lr in self.lrs):
            raise ValueError(f"lrs={list(self.lrs)}: needs at least one finite learning rate > 0")
        if (
            not self.seeds
            or any(not _is_int(s) or s < 0 for s in self.seeds)
            or len(set(self.seeds)) != len(self.seeds)
        ):
            raise ValueError(f"seeds={list(self.seeds)}: needs at least one seed, distinct integers >= 0")
        for key in ("epochs", "batch_size", "test_batch_size", "vocab_size"):
            value = getattr(self, key)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{key}={value!r}: needs an integer {key} >= 1")
        if not _is_int(self.data_seed) or self.data_seed < 0:
            raise ValueError(f"data_seed={self.data_seed!r}: needs an integer >= 0")
        if self.max_stack_runs is not None and (not _is_int(self.max_stack_runs) or self.max_stack_runs < 1):
            raise ValueError(f"max_stack_runs={self.max_stack_runs!r}: needs an integer >= 1 (or none: whole groups)")
        if not _is_number(self.early_stop) or not (0 < self.early_stop <= 1):
            raise ValueError(f"early_stop={self.early_stop!r}: needs 0 < early_stop <= 1")
        check_lr_schedule(self.lr_schedule)
        if not self.train or not self.test:
            raise ValueError("train/test: the sweep needs training and test segments")
        for label, segments in (("train", self.train), ("test", self.test)):
            for i, seg in enumerate(segments):
                try:
                    seg.validate(self.vocab_size)
                except ValueError as exc:
                    raise ValueError(f"{label}[{i}]: {exc}") from None
        longest = max(s.seq_len for s in self.train + self.test)
        for i, m in enumerate(self.models):
            try:
                m.validate()
                if m.vocab_size != self.vocab_size:
                    raise ValueError(f"vocab_size={m.vocab_size}: differs from the sweep's {self.vocab_size}")
                if m.max_len < longest:
                    raise ValueError(f"max_len={m.max_len}: needs max_len >= the longest sequence {longest}")
            except ValueError as exc:
                raise ValueError(f"models[{i}] ({m.mixer or m.family}): {exc}") from None
        ids = [r.run_id for r in self.runs()]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"models: the sweep lists a run twice ({twice[0]})")

    def runs(self) -> list[RunSpec]:
        return [RunSpec(self.name, m, lr, s) for m in self.models for lr in self.lrs for s in self.seeds]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def groups(sweep: SweepConfig, run_ids: set[str] | None = None) -> list[list[RunSpec]]:
    """The sweep's stacks: its runs grouped by stack key, the groups in the order the sweep first lists their models
    (a sweep file's or a preset's order, so that what it lists first trains first), each group cut into stacks of at
    most ``sweep.max_stack_runs`` runs (module docs); restricted to ``run_ids`` after the cut, stacks left empty
    dropped."""
    by_key: dict[tuple, list[RunSpec]] = {}  # insertion-ordered: a group's place is its first run's
    for run in sweep.runs():
        by_key.setdefault(run.model.stack_key(), []).append(run)
    stacks = []
    for key in by_key:
        group = by_key[key]
        size = sweep.max_stack_runs or len(group)
        for start in range(0, len(group), size):
            stack = [r for r in group[start : start + size] if run_ids is None or r.run_id in run_ids]
            if stack:
                stacks.append(stack)
    return stacks


def sweep_summary(sweeps: list[SweepConfig]) -> list[dict]:
    return [
        {
            "name": sw.name,
            "runs": len(sw.runs()),
            "groups": len(groups(sw)),
            "epochs": sw.epochs,
            "training_tokens": training_tokens(sw),
            "layers": _runs_by_layers(sw),
            "lrs": list(sw.lrs),
            "seeds": list(sw.seeds),
            "train": [asdict(s) for s in sw.train],
            "test": [asdict(s) for s in sw.test],
            "notes": list(sw.notes),
        }
        for sw in sweeps
    ]


def training_tokens(sweep: SweepConfig) -> int:
    """The tokens ``sweep``'s runs train on at its budget, summed over runs and epochs (no early stops): a measure of
    its cost that needs no device, to compare sweeps by (``--dry-run`` prints it)."""
    per_epoch = sum(s.num_examples * s.seq_len for s in sweep.train)
    return len(sweep.runs()) * sweep.epochs * per_epoch


def planned_runs(sweep: SweepConfig, records: Iterable[dict]) -> list[RunSpec]:
    """``sweep``'s runs at its own seeds and every seed of ``records`` (its records: ``--seeds 0 1 2`` plans three
    runs where a preset ships one), what the records are counted against."""
    seeds = set(sweep.seeds) | {r.get("seed", 0) for r in records}
    return replace(sweep, seeds=tuple(sorted(seeds))).runs()


def runs_left(sweep: SweepConfig, done: set[str]) -> dict[str, dict[str, int]]:
    """Per family and width of ``sweep``'s models (``"mamba d=256"``: its knob settings together), how many runs are
    ``planned`` and how many of those are not among the run ids in ``done`` (``left``): what a resumed sweep still has
    to train."""
    counts: dict[str, dict[str, int]] = {}
    for run in sweep.runs():
        entry = counts.setdefault(f"{run.model.family} d={run.model.d_model}", {"planned": 0, "left": 0})
        entry["planned"] += 1
        entry["left"] += run.run_id not in done
    return counts


def _runs_by_layers(sweep: SweepConfig) -> dict[str, int]:
    """How many of the sweep's runs have each topology (``ModelConfig.layers``): ``{"hybrid": 96, "mixer": 36}``."""
    counts: dict[str, int] = {}
    for run in sweep.runs():
        counts[run.model.layers] = counts.get(run.model.layers, 0) + 1
    return dict(sorted(counts.items()))
