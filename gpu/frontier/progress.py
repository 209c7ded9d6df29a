"""A progress display for ``mqarkit frontier run``: one bar per training stack and one for the whole call, with ETAs.

:class:`ProgressDisplay` is a :class:`~mqarkit.gpu.frontier.observers.StackObserver` drawing with ``rich.progress``
on stderr. The top line counts the epochs of every stack planned (a stack stopped early counts as done) and estimates
the time left from the pace so far; below it, each stack being trained has its line: sweep, family and width, runs,
epoch ``k/E``, the best test accuracy among its runs after the last epoch, and its own ETA. A finished stack's line goes
away (the runner's log keeps a line for it). The command shows it when stderr is a terminal, unless ``--no-progress``
(:func:`wanted`); otherwise the runner's log lines (:class:`~mqarkit.gpu.frontier.observers.EpochLog`) report the
epochs as before.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from mqarkit.gpu.frontier.observers import StackObserver, stack_name

if TYPE_CHECKING:
    from mqarkit.gpu.frontier.sweep import RunSpec, SweepConfig
    from mqarkit.gpu.frontier.train import EpochReport, StackResult


def wanted(no_progress: bool, stream: TextIO | None = None) -> bool:
    """Whether to show the display: not asked off and ``stream`` (default ``sys.stderr``) is a terminal."""
    stream = sys.stderr if stream is None else stream
    return not no_progress and stream.isatty()


class ProgressDisplay(StackObserver):
    """The display (module docstring); a context manager: shown inside its ``with`` block.

    ``console``: where to draw (default: a ``rich`` console on stderr). ``redirect_stdout``: route ``print`` through
    the display so that log lines appear above it instead of tearing it (default: when stdout is a terminal; a
    redirected stdout keeps its lines)."""

    def __init__(self, console: Console | None = None, *, redirect_stdout: bool | None = None) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[unit]} {task.completed:.0f}/{task.total:.0f}"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            redirect_stdout=sys.stdout.isatty() if redirect_stdout is None else redirect_stdout,
            redirect_stderr=False,
        )
        self.overall: TaskID | None = None
        self.planned_epochs = 0
        self.planned_sweeps: list[str] = []
        self.stacks: dict[tuple[str, str], TaskID] = {}  # (sweep, first run id) -> its line
        self.epochs_done: dict[tuple[str, str], int] = {}

    def __enter__(self) -> ProgressDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def planned(self, stacks: list[tuple[SweepConfig, list[RunSpec]]]) -> None:
        # a second call (several run_sweeps in one display) adds its stacks to the count
        self.planned_epochs += sum(sw.epochs for sw, _ in stacks)
        self.planned_sweeps += [n for n in dict.fromkeys(sw.name for sw, _ in stacks) if n not in self.planned_sweeps]
        description = ", ".join(self.planned_sweeps) or "nothing to do"
        if self.overall is None:
            self.overall = self.progress.add_task(description, total=self.planned_epochs, unit="epochs", status="")
        else:
            self.progress.update(self.overall, total=self.planned_epochs, description=description)
        self.progress.refresh()

    def stack_started(self, sweep: SweepConfig, group: list[RunSpec]) -> None:
        description = f"  {sweep.name}: {stack_name(group)} ({len(group)} runs)"
        key = _key(sweep, group)
        self.stacks[key] = self.progress.add_task(description, total=sweep.epochs, unit="epoch", status="best -")
        self.epochs_done[key] = 0
        self.progress.refresh()

    def epoch_ended(self, sweep: SweepConfig, group: list[RunSpec], report: EpochReport) -> None:
        key = _key(sweep, group)
        self.epochs_done[key] = report.epoch
        self.progress.update(self.stacks[key], completed=report.epoch, status=f"best {max(report.overall):.3f}")
        if self.overall is not None:
            self.progress.advance(self.overall)
        self.progress.refresh()  # drawn once per epoch, whatever the refresh thread does

    def stack_finished(self, sweep: SweepConfig, group: list[RunSpec], result: StackResult) -> None:
        key = _key(sweep, group)
        skipped = sweep.epochs - self.epochs_done.pop(key)  # every run stopped early: the rest counts as done
        if self.overall is not None and skipped:
            self.progress.advance(self.overall, skipped)
        self.progress.remove_task(self.stacks.pop(key))

    def stack_failed(self, sweep: SweepConfig, group: list[RunSpec], reason: str) -> None:
        key = _key(sweep, group)
        left = sweep.epochs - self.epochs_done.pop(key)  # they will not come in this call: counted as passed
        if self.overall is not None and left:
            self.progress.advance(self.overall, left)
        self.progress.remove_task(self.stacks.pop(key))  # the runner's log says why


def _key(sweep: SweepConfig, group: list[RunSpec]) -> tuple[str, str]:
    return sweep.name, group[0].run_id
