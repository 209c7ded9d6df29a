"""Optional experiment tracking of a sweep: per run and epoch, the training loss and the test accuracies.

``mqarkit frontier run --log tensorboard`` (or ``--log wandb``, with ``--log-dir DIR``) records, for every run and
after every epoch it trains: ``train/loss`` (the mean cross-entropy over the epoch's training labels, see
:class:`~mqarkit.gpu.frontier.train.EpochReport`), ``test/accuracy`` (over every test query, as the records'
``overall_accuracy``), ``test/slice_mean_accuracy`` (the mean over the test slices, the frontier's y-axis) and
``test/accuracy_N<seq_len>_D<num_kv_pairs>`` for each test slice; the step is the epoch. Off by default; the tracker's
package is imported only when asked for (optional extras ``mqarkit[tensorboard]`` and ``mqarkit[wandb]``).

- **TensorBoard**: one event folder per run, ``DIR/<run_id>`` (run ids are ``<sweep>/<model>-lr…-s…``), written
  through ``torch.utils.tensorboard``; ``tensorboard --logdir DIR`` shows them.
- **Weights & Biases**: one wandb run per training run, named by its run id, grouped by sweep, its ``job_type`` the
  stack (family and width), its config the run's model, learning rate, seed and budget; files under ``DIR/wandb``;
  project ``$WANDB_PROJECT`` or ``mqarkit-frontier``. Online or offline as wandb is set up (``WANDB_MODE=offline``
  writes local files only, for ``wandb sync`` later).

:class:`Tracking` names the tracker and the folder: it is what the launchers pass to their workers (a process per
device, a Ray task), each of which builds its own tracker (:meth:`Tracking.observer`), so the folder must be one the
workers can write (for Ray on several machines: a shared file system, or wandb online). A run trained again after an
interruption adds a second stream to its folder (TensorBoard) or a second wandb run of the same name.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mqarkit.gpu.frontier.observers import StackObserver, stack_name
from mqarkit.outputs import check_output_folder

if TYPE_CHECKING:
    from mqarkit.gpu.frontier.sweep import RunSpec, SweepConfig
    from mqarkit.gpu.frontier.train import EpochReport, StackResult

TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}  # --log choice -> the package it needs
WANDB_DEFAULT_PROJECT = "mqarkit-frontier"


def default_log_dir(out: str | os.PathLike[str]) -> Path:
    """Where the trackers write unless told: beside the results file, ``results.jsonl`` -> ``results.logs/``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.logs")


@dataclass(frozen=True)
class Tracking:
    """Which tracker (``"tensorboard"`` or ``"wandb"``) writes where; picklable, for workers to build their own."""

    kind: str
    log_dir: str

    def validate(self) -> None:
        """Before any work: a known tracker, its package installed, and a folder files can be created in."""
        if self.kind not in TRACKER_PACKAGES:
            raise ValueError(f"log={self.kind!r}: unknown tracker; choose from {', '.join(TRACKER_PACKAGES)}")
        package = TRACKER_PACKAGES[self.kind]
        if importlib.util.find_spec(package) is None:
            raise ValueError(f"log={self.kind!r}: needs the package {package} (pip install 'mqarkit[{self.kind}]')")
        check_output_folder(self.log_dir, parameter="log_dir")

    def observer(self) -> StackObserver:
        """The tracker, as an observer of the runner (imports its package now)."""
        tracker = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker}[self.kind]
        return tracker(Path(self.log_dir))


def epoch_scalars(sweep: SweepConfig, report: EpochReport, r: int) -> dict[str, float]:
    """The numbers recorded for run ``r`` of a stack after an epoch (module docstring)."""
    scalars = {
        "train/loss": report.loss[r],
        "test/accuracy": report.overall[r],
        "test/slice_mean_accuracy": sum(report.accuracy[r]) / len(report.accuracy[r]),
    }
    for segment, accuracy in zip(sweep.test, report.accuracy[r]):
        scalars[f"test/accuracy_N{segment.seq_len}_D{segment.num_kv_pairs}"] = accuracy
    return scalars


def run_config(sweep: SweepConfig, run: RunSpec) -> dict[str, Any]:
    """What a tracker stores as a run's configuration."""
    return {
        "run_id": run.run_id,
        "sweep": sweep.name,
        "model": run.model.to_dict(),
        "lr": run.lr,
        "seed": run.seed,
        "data_seed": sweep.data_seed,
        "epochs": sweep.epochs,
        "batch_size": sweep.batch_size,
        "notes": list(sweep.notes),
    }


class TensorBoardTracker(StackObserver):
    """One ``SummaryWriter`` per run of the stack being trained, in ``log_dir/<run_id>``."""

    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # needs the package tensorboard

        self.log_dir, self.writer_class = log_dir, SummaryWriter
        self.writers: list[Any] = []

    def stack_started(self, sweep: SweepConfig, group: list[RunSpec]) -> None:
        self.writers = [self.writer_class(log_dir=str(self.log_dir / run.run_id)) for run in group]
        for run, writer in zip(group, self.writers):
            writer.add_text("config", json.dumps(run_config(sweep, run), sort_keys=True))

    def epoch_ended(self, sweep: SweepConfig, group: list[RunSpec], report: EpochReport) -> None:
        for r, writer in enumerate(self.writers):
            if report.trained[r]:
                for tag, value in epoch_scalars(sweep, report, r).items():
                    writer.add_scalar(tag, value, global_step=report.epoch)

    def stack_finished(self, sweep: SweepConfig, group: list[RunSpec], result: StackResult) -> None:
        self._close()

    def stack_failed(self, sweep: SweepConfig, group: list[RunSpec], reason: str) -> None:
        self._close()  # what was logged stays; a retry of the runs appends to it

    def _close(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers = []


class WandbTracker(StackObserver):
    """One wandb run per run of the stack being trained (module docstring); wandb's console capture off."""

    def __init__(self, log_dir: Path) -> None:
        import wandb  # needs the package wandb

        self.log_dir, self.wandb = log_dir, wandb
        self.runs: list[Any] = []

    def stack_started(self, sweep: SweepConfig, group: list[RunSpec]) -> None:
        settings = self.wandb.Settings(console="off", silent=True)
        self.runs = [
            self.wandb.init(
                project=os.environ.get("WANDB_PROJECT", WANDB_DEFAULT_PROJECT),
                dir=str(self.log_dir),
                name=run.run_id,
                group=sweep.name,
                job_type=stack_name(group),
                config=run_config(sweep, run),
                reinit="create_new",  # the stack's runs are open at once
                settings=settings,
            )
            for run in group
        ]

    def epoch_ended(self, sweep: SweepConfig, group: list[RunSpec], report: EpochReport) -> None:
        for r, run in enumerate(self.runs):
            if report.trained[r]:
                run.log(epoch_scalars(sweep, report, r), step=report.epoch)

    def stack_finished(self, sweep: SweepConfig, group: list[RunSpec], result: StackResult) -> None:
        for run in self.runs:
            run.finish()
        self.runs = []

    def stack_failed(self, sweep: SweepConfig, group: list[RunSpec], reason: str) -> None:
        for run in self.runs:
            run.finish(exit_code=1)  # wandb marks them failed; a retry of the runs starts new wandb runs
        self.runs = []
