"""``mqarkit frontier run --time-budget-s``: a sweep under a time limit starts no stack it is projected not to finish
(``frontier.projection.TimeBudget``), and the stacks it does not start stay to do."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from mqarkit.gpu.frontier.cli import main as frontier_main
from mqarkit.gpu.frontier.config import ModelConfig
from mqarkit.gpu.frontier.presets import get_preset
from mqarkit.gpu.frontier.projection import TimeBudget
from mqarkit.gpu.frontier.records import read_records
from mqarkit.gpu.frontier.sweep import groups


def _table(rows):
    (base,) = get_preset("tiny")
    settings = {"data_preset": "tiny", "example_scale": 1.0, "batch_size": base.batch_size}
    return {"env": {"device": "a GPU"}, "settings": settings, "rows": rows}


def _row(
    model: ModelConfig, epoch_s: float, runs: int = 2, knobs: list[dict] | None = None, compile_s: float | None = None
) -> dict:
    timed = {} if compile_s is None else {"first_steps_s": compile_s / 4, "eval_first_s": 3 * compile_s / 4}
    return timed | {
        "path": "stacked",
        "family": model.family,
        "d_model": model.d_model,
        "layers": model.layers,
        "runs": runs,
        "status": "measured",
        "epoch_s": epoch_s,
        "knob_settings": [model.knob_dict()] if knobs is None else knobs,
    }


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _two_stacks():
    (base,) = get_preset("tiny", epochs=3)
    fast, slow = ModelConfig("attention", 32), ModelConfig("based", 16)
    sweep = replace(base, models=(fast, slow), max_stack_runs=2)
    by_family = {stack[0].model.family: stack for stack in groups(sweep, None)}
    return sweep, fast, slow, by_family["attention"], by_family["based"]


def test_a_stack_projected_past_the_time_left_is_refused_and_one_that_fits_is_not():
    sweep, fast, slow, fast_stack, slow_stack = _two_stacks()
    clock = Clock()
    budget = TimeBudget(60.0, _table([_row(fast, 2.0), _row(slow, 30.0)]), clock=clock)
    assert len(fast_stack) == len(slow_stack) == 2  # so each is projected as its row's epoch x 3 epochs
    assert budget.refusal(sweep, fast_stack) is None  # 6 s of 60
    assert budget.refusal(sweep, slow_stack) == "projected 90 s (compilation not measured), 60 s of the budget left"
    clock.now += 54.0
    assert budget.left() == 6.0 and budget.refusal(sweep, fast_stack) is None  # exactly what is left


def test_time_left_decides_and_a_spent_budget_refuses_every_stack():
    sweep, fast, slow, fast_stack, slow_stack = _two_stacks()
    clock = Clock()
    budget = TimeBudget(10.0, _table([_row(fast, 2.0)]), clock=clock)
    assert budget.refusal(sweep, fast_stack) is None  # 6 s of 10
    clock.now += 5.0
    assert budget.refusal(sweep, fast_stack) == "projected 6 s (compilation not measured), 5 s of the budget left"
    assert budget.refusal(sweep, slow_stack) is None  # no row: not projected, starts while time is left
    assert budget.refusal(sweep, fast_stack, resuming=True) is None  # its epochs left are unknown before loading
    clock.now += 5.0
    for stack in (fast_stack, slow_stack):
        assert budget.refusal(sweep, stack) == "the time budget of 10 s is spent"
        assert budget.refusal(sweep, stack, resuming=True) == "the time budget of 10 s is spent"


def test_a_measured_compilation_counts_against_the_time_left():
    sweep, fast, slow, fast_stack, slow_stack = _two_stacks()
    clock = Clock()
    budget = TimeBudget(20.0, _table([_row(fast, 2.0, compile_s=14.0), _row(slow, 1.0, compile_s=20.0)]), clock=clock)
    assert budget.refusal(sweep, fast_stack) is None  # 6 s of epochs + 14 s compiling: exactly the 20 s left
    assert budget.refusal(sweep, slow_stack) == "projected 3 s (+ 20 s compiling), 20 s of the budget left"
    clock.now += 1.0
    assert budget.refusal(sweep, fast_stack) == "projected 6 s (+ 14 s compiling), 19 s of the budget left"
    assert budget.refusal(sweep, slow_stack, resuming=True) is None  # a resumed stack: left to its checkpoint


def test_skip_unprojected_refuses_a_stack_without_a_projection_and_needs_a_table():
    sweep, fast, _, fast_stack, slow_stack = _two_stacks()
    budget = TimeBudget(60.0, _table([_row(fast, 2.0)]), skip_unprojected=True, clock=Clock())
    assert budget.refusal(sweep, fast_stack) is None
    why = "not projected (no measured row of based at d = 16, layers hybrid) and --skip-unprojected"
    assert budget.refusal(sweep, slow_stack) == why
    with pytest.raises(ValueError, match="--skip-unprojected: only with --time-budget-s and --speed-table"):
        TimeBudget(60.0, skip_unprojected=True)


def test_without_a_table_only_the_clock_decides():
    sweep, _, _, fast_stack, _ = _two_stacks()
    clock = Clock()
    budget = TimeBudget(1.0, clock=clock)
    assert budget.refusal(sweep, fast_stack) is None
    clock.now += 1.0
    assert budget.refusal(sweep, fast_stack) == "the time budget of 1 s is spent"


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("inf"), float("nan")])
def test_a_budget_that_is_not_a_positive_finite_time_is_refused(seconds):
    with pytest.raises(ValueError, match=r"--time-budget-s=.*: needs a finite number of seconds > 0"):
        TimeBudget(seconds)


def test_the_sweep_trains_what_fits_and_leaves_the_rest_to_do(tmp_path, capsys):
    (base,) = get_preset("tiny")
    attention = next(m for m in base.models if m.family == "attention")
    other = next(m for m in base.models if m.family != "attention")
    knobs = [m.knob_dict() for m in base.models if m.family == other.family]  # every model of it is projected
    table = tmp_path / "speed.json"  # attention's stacks cost nothing, the other family's a day each
    table.write_text(json.dumps(_table([_row(attention, 0.0), _row(other, 86400.0, knobs=knobs)])))
    out = tmp_path / "r.jsonl"
    families = ["--families", attention.family, other.family, "--d-models", str(attention.d_model), str(other.d_model)]
    argv = ["run", "--preset", "tiny", *families, "--epochs", "1", "--out", str(out), "--device", "cpu"]
    argv += ["--no-progress", "--time-budget-s", "3600", "--speed-table", str(table)]
    assert frontier_main(argv) == 0
    printed = capsys.readouterr().out
    records = list(read_records(out))
    assert records and {r["family"] for r in records} == {"attention"}
    assert f"{other.family} d={other.d_model}: not started (projected " in printed
    assert "stacks not started within the time budget" in printed
    left = frontier_main([*argv[:-4], "--dry-run"])  # the refused runs are still to do
    assert left == 0
    (summary,) = json.loads(capsys.readouterr().out)
    assert summary["left"] > 0 and all(m["left"] == 0 for k, m in summary["models"].items() if "attention" in k)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--time-budget-s", "0"], "--time-budget-s=0.0: needs a finite number of seconds > 0"),
        (["--time-budget-s", "60", "--dry-run"], "--time-budget-s: not with --dry-run, --ray or --devices"),
        (["--time-budget-s", "60", "--devices", "cpu", "cpu"], "--time-budget-s: not with --dry-run, --ray or"),
        (["--speed-table", "x.json"], "--speed-table: only with --dry-run or --time-budget-s"),
        (["--skip-unprojected"], "--skip-unprojected: only with --time-budget-s and --speed-table"),
        (["--skip-unprojected", "--time-budget-s", "60"], "--skip-unprojected: only with --time-budget-s and"),
    ],
)
def test_bad_budget_use_is_one_line_and_exit_2(tmp_path, capsys, extra, named):
    argv = ["run", "--preset", "tiny", "--out", str(tmp_path / "r.jsonl"), *extra]
    assert frontier_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and named in err
    assert not (tmp_path / "r.jsonl").exists()
