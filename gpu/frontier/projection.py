"""The device time a sweep's runs still to train would take, projected from a measured speed table.

The table is the JSON ``benchmarks/frontier_speed.py --families`` writes (``frontier_speed_families.json``): per
family, width and topology, the epoch of a stack of ``runs`` runs on one preset's data, measured on one device. Each
stack the sweep still has to train (:func:`~mqarkit.gpu.frontier.sweep.groups` over the runs left) is projected as

    row's epoch × (the stack's runs / the row's runs) × the sweep's epochs

linear in the runs (a smaller stack uses the GPU less well, so for it this is low), without early stops (high) and
without compilation (a few minutes a stack, cold). A stack gets no projection where the table has no measured row of
its family, width and topology (the rule for a row's topology: :func:`row_layers`), where a run of it has knobs the
row did not measure (a window of 1,024 is not timed by a row of window 64), or where the sweep's data or batch are not
the table's; it is listed with the reason, and its runs are counted apart, never guessed.

The same projection decides, under ``--time-budget-s``, which stacks a command may still start (:class:`TimeBudget`).
"""

from __future__ import annotations

import math
import time

from mqarkit.gpu.frontier.observers import stack_name
from mqarkit.gpu.frontier.presets import get_preset
from mqarkit.gpu.frontier.sweep import RunSpec, SweepConfig, groups


def row_layers(row: dict) -> str | None:
    """A speed row's topology (None: a generic row's plain module); a stacked row written before rows named it was
    measured with the default, ``"hybrid"``."""
    return row.get("layers", "hybrid" if row["path"] == "stacked" else None)


def table_mismatch(table: dict, sweep: SweepConfig) -> str | None:
    """Why ``table``'s rows do not describe ``sweep``'s epochs (other data, scaled data, another batch), or None."""
    settings = table["settings"]
    if settings.get("example_scale", 1.0) != 1.0:
        return f"the table was measured on scaled data (examples x{settings['example_scale']})"
    if settings["batch_size"] != sweep.batch_size:
        return f"the table's batch is {settings['batch_size']}, the sweep's {sweep.batch_size}"
    presets = get_preset(settings["data_preset"])
    if len(presets) != 1:  # the benchmark measures on a preset of one sweep; a table that says otherwise has no data
        return f"the table's data_preset {settings['data_preset']!r} is not one sweep's data"
    if (presets[0].train, presets[0].test) != (sweep.train, sweep.test):
        return f"the table's data are {settings['data_preset']}'s, not the sweep's"
    return None


def measured_rows(table: dict) -> dict[tuple, dict]:
    """The table's measured stacked rows by ``(family, d_model, topology)``."""
    return {
        (r["family"], r["d_model"], row_layers(r)): r
        for r in table["rows"]
        if r["path"] == "stacked" and r["status"] == "measured"
    }


def stack_seconds(
    rows: dict[tuple, dict], mismatch: str | None, stack: list[RunSpec], epochs: int
) -> tuple[float | None, str | None]:
    """One stack's projected seconds for ``epochs`` epochs (module docstring), or None and why it has none."""
    if mismatch is not None:
        return None, mismatch
    m = stack[0].model
    row = rows.get((m.family, m.d_model, m.layers))
    if row is None:
        return None, f"no measured row of {m.family} at d = {m.d_model}, layers {m.layers}"
    if any(r.model.knob_dict() not in row["knob_settings"] for r in stack):
        return None, f"its row measured other knobs ({row['knob_settings']})"
    return row["epoch_s"] * len(stack) / row["runs"] * epochs, None


def project(sweep: SweepConfig, done: set[str], table: dict) -> dict:
    """``sweep``'s stacks left to train (runs not in ``done``), each with its projected seconds or why it has none."""
    rows, mismatch = measured_rows(table), table_mismatch(table, sweep)
    left = {r.run_id for r in sweep.runs()} - done
    stacks = []
    for stack in groups(sweep, left):
        seconds, why = stack_seconds(rows, mismatch, stack, sweep.epochs)
        m = stack[0].model
        stacks.append(
            {"stack": stack_name(stack), "layers": m.layers, "runs": len(stack), "seconds": seconds, "why": why}
        )
    projected = [s for s in stacks if s["seconds"] is not None]
    return {
        "device": table["env"]["device"],
        "rule": "row epoch x stack runs / row runs x epochs; no early stops, no compilation",
        "stacks": stacks,
        "projected_s": sum(s["seconds"] for s in projected),
        "projected_runs": sum(s["runs"] for s in projected),
        "unprojected_runs": sum(s["runs"] for s in stacks if s["seconds"] is None),
    }


class TimeBudget:
    """Which stacks a sweep may still start within ``seconds`` from ``started`` (``clock``'s reading), so that a
    command under a time limit does not start a stack it cannot finish (``mqarkit frontier run --time-budget-s``).

    :meth:`refusal` is asked before each stack: none once the budget is spent; with a speed ``table``, none whose
    projection (:func:`stack_seconds` for the sweep's epochs; compilation not included) exceeds the time left. A
    stack the table cannot project, and one resuming a saved state (its epochs left are not read before it loads),
    start while any time is left. A refused stack's runs stay to do, as if the command had stopped before them."""

    def __init__(
        self, seconds: float, table: dict | None = None, *, started: float | None = None, clock=time.monotonic
    ):
        if not (0 < seconds < math.inf):
            raise ValueError(f"--time-budget-s={seconds}: needs a finite number of seconds > 0")
        self.seconds, self.table, self.clock = seconds, table, clock
        self.started = clock() if started is None else started
        self._rows = measured_rows(table) if table is not None else {}

    def left(self) -> float:
        """Seconds of the budget left now."""
        return self.seconds - (self.clock() - self.started)

    def refusal(self, sweep: SweepConfig, stack: list[RunSpec], *, resuming: bool = False) -> str | None:
        """Why ``stack`` must not start now, or None."""
        left = self.left()
        if left <= 0:
            return f"the time budget of {self.seconds:.0f} s is spent"
        if self.table is None or resuming:
            return None
        seconds, _ = stack_seconds(self._rows, table_mismatch(self.table, sweep), stack, sweep.epochs)
        if seconds is not None and seconds > left:
            return f"projected {seconds:.0f} s (without compilation), {left:.0f} s of the budget left"
        return None
