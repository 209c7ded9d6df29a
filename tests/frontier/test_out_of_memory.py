"""A stack that runs out of device memory stops alone: it is split down to stacks of one run
(``test_out_of_memory_split.py``), and those that still run out leave their runs to do while the sweep trains and
records the other stacks and says which failed and why, so that a rerun on the same results file trains them (CPU,
the error forced by a stand-in for the training of one family's stacks, at any size)."""

from __future__ import annotations

import io
import re

import pytest
import torch
from rich.console import Console

from mqarkit.gpu.frontier import get_preset, read_records, run_groups, run_sweeps
from mqarkit.gpu.frontier import train as train_module
from mqarkit.gpu.frontier.cli import main as frontier_main
from mqarkit.gpu.frontier.observers import StackObserver
from mqarkit.gpu.frontier.progress import ProgressDisplay
from mqarkit.gpu.frontier.runner import StacksOutOfMemory

FAMILIES = ("based", "mamba2")  # the tiny preset's stacks of these: one each, of 4 and 2 runs
FAILING = "mamba2"
MESSAGE = "CUDA out of memory. Tried to allocate 768.00 MiB. GPU 0 has 212.19 MiB free. Including non-PyTorch memory"


@pytest.fixture
def failing_stack(monkeypatch):
    """The training of the ``mamba2`` stack raises torch's out-of-memory error; every other stack trains."""
    real = train_module.train_stack

    def train_stack(model, *args, **kwargs):
        if model.mixer.name == FAILING:
            raise torch.OutOfMemoryError(MESSAGE)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(train_module, "train_stack", train_stack)
    return monkeypatch


class Events(StackObserver):
    def __init__(self) -> None:
        self.failed: list[tuple[str, str]] = []

    def stack_failed(self, sweep, group, reason) -> None:
        self.failed.append((group[0].model.family, reason))


def test_the_other_stacks_are_recorded_and_a_rerun_trains_the_failed_one(tmp_path, failing_stack):
    out, events = tmp_path / "r.jsonl", Events()
    sweeps = get_preset("tiny", epochs=1, families=FAMILIES)
    with pytest.raises(StacksOutOfMemory) as failed:
        run_sweeps(sweeps, out, "cpu", log=lambda s: None, observers=[events])
    assert failed.value.written == 4 and len(failed.value.stacks) == 2  # its stack of 2, split: two stacks of 1
    reason = "CUDA out of memory. Tried to allocate 768.00 MiB. GPU 0 has 212.19 MiB free"  # up to "Including"
    assert all(line.endswith(f": {reason}") and FAILING in line for line in failed.value.stacks)
    assert events.failed == [(FAILING, reason)] * 3  # the stack of 2, then each of 1
    assert {r["model"]["family"] for r in read_records(out)} == {"based"}  # the failed stack's runs: no records
    failing_stack.undo()  # memory enough now: the rerun trains exactly the failed stack's runs
    assert run_sweeps(sweeps, out, "cpu", log=lambda s: None) == 2
    assert sorted(r["model"]["family"] for r in read_records(out)) == ["based"] * 4 + [FAILING] * 2


def test_without_a_list_for_them_the_error_propagates(failing_stack):
    """``run_groups`` called as a library function keeps torch's error unless it is given a list to add stacks to."""
    sweep = get_preset("tiny", epochs=1, families=(FAILING,))[0]
    with pytest.raises(torch.OutOfMemoryError, match="Tried to allocate"):
        list(run_groups(sweep, None, "cpu", lambda s: None))


def test_the_cli_names_the_stack_and_exits_1(tmp_path, failing_stack, capsys):
    out = tmp_path / "r.jsonl"
    argv = ["run", "--preset", "tiny", "--epochs", "1", "--families", *FAMILIES, "--device", "cpu", "--no-progress"]
    assert frontier_main([*argv, "--out", str(out)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(e.startswith("mqarkit frontier: out of device memory: ") for e in err[:2])
    assert FAILING in err[0] and FAILING in err[1]
    assert err[2] == f"mqarkit frontier: 4 runs recorded in {out}; a rerun with the same --out trains them again"
    assert len(read_records(out)) == 4


def test_the_progress_display_counts_the_failed_stacks_epochs_as_passed(tmp_path, failing_stack):
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160, color_system=None)
    with ProgressDisplay(console, redirect_stdout=False) as display, pytest.raises(StacksOutOfMemory):
        run_sweeps(
            get_preset("tiny", epochs=1, families=FAMILIES), tmp_path / "r.jsonl", "cpu", observers=[display], log=print
        )
    last = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue()).splitlines()[-3:]
    # two stacks of one epoch, the failed one split into two more; each failed one's epoch counted as passed
    assert any("epochs 4/4" in line for line in last), last
    assert not display.stacks and not display.epochs_done  # no stack line left
