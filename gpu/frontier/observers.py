"""Watching a sweep train: the events the runner reports, and the observer that turns them into log lines.

The runner (:func:`~mqarkit.gpu.frontier.runner.run_sweeps`, :func:`~mqarkit.gpu.frontier.runner.run_groups`) tells
every :class:`StackObserver` it is given what it does, in this order: the stacks it is about to train
(:meth:`~StackObserver.planned`, once per call of ``run_sweeps``), then for each stack its start, each epoch's
:class:`~mqarkit.gpu.frontier.train.EpochReport`, and its end. Observers only watch: they cannot change the training,
and the records do not depend on them. The ones shipped: :class:`EpochLog` (the log lines, the default),
:class:`~mqarkit.gpu.frontier.progress.ProgressDisplay` (a terminal progress bar), and the trackers of
:mod:`mqarkit.gpu.frontier.tracking` (TensorBoard, Weights & Biases).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mqarkit.gpu.frontier.sweep import RunSpec, SweepConfig
    from mqarkit.gpu.frontier.train import EpochReport, StackResult


def stack_name(group: list[RunSpec]) -> str:
    """How logs and displays name a stack: its family (or plain module's class) and width, e.g. ``based d=64``."""
    m = group[0].model
    return f"{m.mixer.split(':')[1] if m.mixer else m.family} d={m.d_model}"


class StackObserver:
    """The runner's events; each method does nothing unless a subclass says otherwise."""

    def planned(self, stacks: list[tuple[SweepConfig, list[RunSpec]]]) -> None:
        """The stacks this call will train, in order (each with its sweep), before any of them starts."""

    def stack_started(self, sweep: SweepConfig, group: list[RunSpec]) -> None:
        """A stack starts (after the sweep's data exist)."""

    def epoch_ended(self, sweep: SweepConfig, group: list[RunSpec], report: EpochReport) -> None:
        """A stack finished an epoch: losses and accuracies per run (``report``, in ``group``'s order)."""

    def stack_finished(self, sweep: SweepConfig, group: list[RunSpec], result: StackResult) -> None:
        """A stack finished (all epochs, or every run stopped early); its records are written next."""

    def stack_failed(self, sweep: SweepConfig, group: list[RunSpec], reason: str) -> None:
        """A stack stopped without records (it ran out of device memory: ``reason``); its runs stay to do."""

    def stack_split(self, sweep: SweepConfig, group: list[RunSpec], parts: list[list[RunSpec]], reason: str) -> None:
        """A stack ran out of device memory (``reason``) and its runs are trained next as the smaller stacks
        ``parts``. By default: :meth:`stack_failed` for it, then :meth:`planned` for the parts."""
        self.stack_failed(sweep, group, reason)
        self.planned([(sweep, part) for part in parts])


class EpochLog(StackObserver):
    """The log lines of the epochs: the first (its time holds compilation and graph capture), every 8th and the last,
    with the stack's best accuracy."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log

    def epoch_ended(self, sweep: SweepConfig, group: list[RunSpec], report: EpochReport) -> None:
        e = report.epoch
        if e == 1 or e % 8 == 0 or e == report.epochs:
            self.log(f"[{sweep.name}] {stack_name(group)}: epoch {e}/{report.epochs}, best {max(report.overall):.3f}")
