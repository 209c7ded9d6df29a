"""A sweep: one data set (training and test segments) and the runs trained on it (a model config x a learning rate).

Runs of one sweep that share :meth:`ModelConfig.stack_key` form a *group* trained as one stacked computation.
Reproducibility: the data depend on ``sweep.seed`` only; a run's initial weights on its ``run_id`` and seed only; the
batch order of a group on the seed and the group key; so the same run gets the same result whichever worker trains it.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

import numpy as np

from mqarkit.gpu.frontier.data import Segment
from mqarkit.gpu.frontier.model import ModelConfig

STATE_BYTES_PER_NUMBER = 4  # the unit of the reference (float32); records give numbers and bytes


@dataclass(frozen=True)
class RunSpec:
    sweep: str
    model: ModelConfig
    lr: float
    seed: int

    @property
    def run_id(self) -> str:
        m = self.model
        knob = {"based": f"-f{m.feature_dim}", "sliding_window": f"-w{m.window}", "ssm": f"-n{m.d_state}"}
        tie = "" if m.tie_head else "-untied"
        return f"{self.sweep}/{m.family}-d{m.d_model}{knob.get(m.family, '')}{tie}-lr{self.lr:.3e}-s{self.seed}"

    def init_seed(self) -> int:
        return int.from_bytes(hashlib.sha256(self.run_id.encode()).digest()[:7], "little")


@dataclass(frozen=True)
class SweepConfig:
    name: str
    models: tuple[ModelConfig, ...]
    lrs: tuple[float, ...]
    epochs: int
    train: tuple[Segment, ...]
    test: tuple[Segment, ...]
    vocab_size: int = 8192
    batch_size: int = 256
    test_batch_size: int = 256
    seed: int = 0
    early_stop: float = 0.99
    notes: tuple[str, ...] = field(default=())

    def validate(self) -> None:
        """Every rule checked before any device time is spent."""
        if not self.name or "/" in self.name:
            raise ValueError(f"name={self.name!r}: needs a non-empty name without '/'")
        if not self.models:
            raise ValueError(f"models: sweep {self.name!r} has no models")
        if not self.lrs or any(not (lr > 0 and np.isfinite(lr)) for lr in self.lrs):
            raise ValueError(f"lrs={self.lrs}: needs at least one finite learning rate > 0")
        for key, value in (
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("test_batch_size", self.test_batch_size),
        ):
            if value < 1:
                raise ValueError(f"{key}={value}: needs {key} >= 1")
        if not (0 < self.early_stop <= 1):
            raise ValueError(f"early_stop={self.early_stop}: needs 0 < early_stop <= 1")
        if not self.train or not self.test:
            raise ValueError(f"train/test: sweep {self.name!r} needs training and test segments")
        longest = max(s.seq_len for s in self.train + self.test)
        for seg in self.train + self.test:
            seg.validate(self.vocab_size)
        for m in self.models:
            m.validate()
            if m.vocab_size != self.vocab_size:
                raise ValueError(f"vocab_size={m.vocab_size}: model differs from the sweep's {self.vocab_size}")
            if m.max_len < longest:
                raise ValueError(f"max_len={m.max_len}: needs max_len >= the longest sequence {longest}")
        ids = [r.run_id for r in self.runs()]
        if len(set(ids)) != len(ids):
            raise ValueError(f"models: sweep {self.name!r} lists a run twice")

    def runs(self) -> list[RunSpec]:
        return [RunSpec(self.name, m, lr, self.seed) for m in self.models for lr in self.lrs]


def groups(sweep: SweepConfig, run_ids: set[str] | None = None) -> list[list[RunSpec]]:
    """The sweep's runs (restricted to ``run_ids``) grouped by stack key, in a fixed order."""
    by_key: dict[tuple, list[RunSpec]] = {}
    for run in sweep.runs():
        if run_ids is None or run.run_id in run_ids:
            by_key.setdefault(run.model.stack_key(), []).append(run)
    return [by_key[k] for k in sorted(by_key, key=repr)]


def sweep_summary(sweeps: list[SweepConfig]) -> list[dict]:
    return [
        {
            "name": sw.name,
            "runs": len(sw.runs()),
            "groups": len(groups(sw)),
            "epochs": sw.epochs,
            "lrs": list(sw.lrs),
            "train": [asdict(s) for s in sw.train],
            "test": [asdict(s) for s in sw.test],
            "notes": list(sw.notes),
        }
        for sw in sweeps
    ]
