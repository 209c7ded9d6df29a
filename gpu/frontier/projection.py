"""The device time a sweep's runs still to train would take, projected from a measured speed table.

The table is the JSON ``benchmarks/frontier_speed.py --families`` writes (``frontier_speed_families.json``): per
family, width and topology, the epoch of a stack of ``runs`` runs on one preset's data, measured on one device. Each
stack the sweep still has to train (:func:`~mqarkit.gpu.frontier.sweep.groups` over the runs left) is projected as

    row's epoch × (the stack's runs / the row's runs) × the sweep's epochs

linear in the runs (a smaller stack uses the GPU less well, so for it this is low) and without early stops (high).
Compilation is projected apart, as the row measured it (:func:`compile_seconds`: its training segments' first steps
and its first evaluation, one to two minutes a stack on cold caches). A stack gets no projection where the table has
no measured row of its family, width and topology (the rule for a row's topology: :func:`row_layers`), where a run of
it has knobs the row did not measure (a window of 1,024 is not timed by a row of window 64), or where the sweep's data
or batch are not the table's; it is listed with the reason, and its runs are counted apart, never guessed.

The same projection decides, under ``--time-budget-s``, which stacks a command may still start (:class:`TimeBudget`).
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

from mqarkit.gpu.frontier.observers import stack_name
from mqarkit.gpu.frontier.presets import get_preset
from mqarkit.gpu.frontier.sweep import RunSpec, SweepConfig, groups

SKIP_UNPROJECTED_RULE = "--skip-unprojected: only with --time-budget-s and --speed-table"


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


def compile_seconds(row: dict) -> float | None:
    """What a stack of ``row``'s spends before its steady epochs, as the row measured it: the first step of each
    training segment (compilation, graph capture) plus the first evaluation, each timed apart by the benchmark (each
    also does one step's or one evaluation's work, small beside it). None for a row without them. They were measured
    on the compile caches the benchmark's command found (the table's ``triton_cache_files_at_start``): a stack on
    warmer caches compiles faster, so for it this is high."""
    first = (row.get("first_steps_s"), row.get("eval_first_s"))
    return None if None in first else first[0] + first[1]


class StackProjection(NamedTuple):
    """One stack's projection: ``seconds`` for the sweep's epochs and ``compile_s`` before them (either None where
    not measured; ``why`` says why ``seconds`` is)."""

    seconds: float | None
    compile_s: float | None
    why: str | None

    @property
    def total(self) -> float | None:
        """Epochs and compilation, or None without a projection of the epochs (compilation counts 0 if unmeasured)."""
        return None if self.seconds is None else self.seconds + (self.compile_s or 0.0)


def stack_projection(
    rows: dict[tuple, dict], mismatch: str | None, stack: list[RunSpec], epochs: int
) -> StackProjection:
    """One stack's projection for ``epochs`` epochs (module docstring); without one, ``seconds`` None and why."""
    if mismatch is not None:
        return StackProjection(None, None, mismatch)
    m = stack[0].model
    row = rows.get((m.family, m.d_model, m.layers))
    if row is None:
        return StackProjection(None, None, f"no measured row of {m.family} at d = {m.d_model}, layers {m.layers}")
    if any(r.model.knob_dict() not in row["knob_settings"] for r in stack):
        return StackProjection(None, None, f"its row measured other knobs ({row['knob_settings']})")
    return StackProjection(row["epoch_s"] * len(stack) / row["runs"] * epochs, compile_seconds(row), None)


def project(sweep: SweepConfig, done: set[str], table: dict) -> dict:
    """``sweep``'s stacks left to train (runs not in ``done``), each with its projected seconds (epochs, and
    compilation apart) or why it has none."""
    rows, mismatch = measured_rows(table), table_mismatch(table, sweep)
    left = {r.run_id for r in sweep.runs()} - done
    stacks = []
    for stack in groups(sweep, left):
        p = stack_projection(rows, mismatch, stack, sweep.epochs)
        m = stack[0].model
        stacks.append(
            {
                "stack": stack_name(stack),
                "layers": m.layers,
                "runs": len(stack),
                "seconds": p.seconds,
                "compile_s": p.compile_s,
                "why": p.why,
            }
        )
    projected = [s for s in stacks if s["seconds"] is not None]
    return {
        "device": table["env"]["device"],
        "rule": "row epoch x stack runs / row runs x epochs, no early stops; compile_s: the row's first steps and "
        "first evaluation",
        "stacks": stacks,
        "projected_s": sum(s["seconds"] for s in projected),
        "projected_compile_s": sum(s["compile_s"] or 0.0 for s in projected),
        "projected_runs": sum(s["runs"] for s in projected),
        "unprojected_runs": sum(s["runs"] for s in stacks if s["seconds"] is None),
    }


class TimeBudget:
    """Which stacks a sweep may still start within ``seconds`` from ``started`` (``clock``'s reading), so that a
    command under a time limit does not start a stack it cannot finish (``mqarkit frontier run --time-budget-s``).

    :meth:`refusal` is asked before each stack: none once the budget is spent; with a speed ``table``, none whose
    projection (:func:`stack_projection` for the sweep's epochs, plus its row's compilation where measured) exceeds
    the time left. A stack the table cannot project starts while any time is left, unless ``skip_unprojected``; one
    resuming a saved state (its epochs left are not read before it loads) starts while any time is left. A refused
    stack's runs stay to do, as if the command had stopped before them."""

    def __init__(
        self,
        seconds: float,
        table: dict | None = None,
        *,
        skip_unprojected: bool = False,
        started: float | None = None,
        clock=time.monotonic,
    ):
        if not (0 < seconds < math.inf):
            raise ValueError(f"--time-budget-s={seconds}: needs a finite number of seconds > 0")
        if skip_unprojected and table is None:
            raise ValueError(SKIP_UNPROJECTED_RULE)
        self.seconds, self.table, self.skip_unprojected, self.clock = seconds, table, skip_unprojected, clock
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
        p = stack_projection(self._rows, table_mismatch(self.table, sweep), stack, sweep.epochs)
        if p.seconds is None:
            return f"not projected ({p.why}) and --skip-unprojected" if self.skip_unprojected else None
        if p.total > left:
            compiling = "compilation not measured" if p.compile_s is None else f"+ {p.compile_s:.0f} s compiling"
            return f"projected {p.seconds:.0f} s ({compiling}), {left:.0f} s of the budget left"
        return None
