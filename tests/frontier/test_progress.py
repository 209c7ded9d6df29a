"""The progress display of ``mqarkit frontier run``: drawn per stack and for the whole call, only on a terminal."""

from __future__ import annotations

import io
import re

from rich.console import Console

from mqarkit.gpu.frontier import get_preset, read_records, run_sweeps
from mqarkit.gpu.frontier.progress import ProgressDisplay, wanted

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_display_draws_each_stack_with_epoch_best_accuracy_and_eta(tmp_path):
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160, color_system=None)
    lines: list[str] = []
    sweeps = get_preset("tiny", epochs=2, families=("attention", "long_conv"))
    with ProgressDisplay(console, redirect_stdout=False) as display:
        recorded = run_sweeps(sweeps, tmp_path / "r.jsonl", "cpu", log=lines.append, observers=[display])
    assert recorded == 4
    text = ANSI.sub("", screen.getvalue())
    records = read_records(tmp_path / "r.jsonl")
    for family in ("attention", "long_conv"):
        best = max(r["overall_accuracy"] for r in records if r["family"] == family)  # after epoch 2 (no early stop)
        drawn = [line for line in text.splitlines() if f"tiny: {family} d=32 (2 runs)" in line]
        assert any("epoch 1/2" in line and "best 0." in line and "ETA" in line for line in drawn), drawn
        assert any("epoch 2/2" in line and f"best {best:.3f}" in line for line in drawn), drawn
    assert "epochs 4/4" in text  # the whole call: two stacks of two epochs
    assert not any("epoch 1/2, best" in line for line in lines)  # the display replaces the epochs' log lines
    assert any("attention d=32: 2 runs" in line for line in lines)  # the stacks' lines stay in the log


def test_display_is_wanted_on_a_terminal_unless_turned_off():
    assert wanted(False, _Terminal())
    assert not wanted(True, _Terminal())
    assert not wanted(False, io.StringIO())  # stderr redirected to a file or a pipe: log lines only
