"""The device time a sweep's runs left would take, projected from a speed table (``frontier.projection``), and the
``--speed-table`` option of ``mqarkit frontier run --dry-run`` that prints it."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from mqarkit.gpu.frontier.cli import main as frontier_main
from mqarkit.gpu.frontier.config import ModelConfig
from mqarkit.gpu.frontier.presets import get_preset
from mqarkit.gpu.frontier.projection import project, row_layers


def _row(family, d, epoch_s, runs=4, layers=None, status="measured", knobs=({},)):
    row = {"path": "stacked", "family": family, "d_model": d, "runs": runs, "status": status, "epoch_s": epoch_s}
    row["knob_settings"] = list(knobs)
    return row if layers is None else row | {"layers": layers}


def _table(rows, **settings):
    base = {"data_preset": "tiny", "example_scale": 1.0, "batch_size": get_preset("tiny")[0].batch_size}
    return {"env": {"device": "a GPU"}, "settings": base | settings, "rows": rows}


def _sweep():
    (base,) = get_preset("tiny", epochs=3)
    models = (ModelConfig("attention", 32), ModelConfig("based", 16), ModelConfig("h3", 32, layers="mixer"))
    return replace(base, models=models, max_stack_runs=2)


def test_a_stack_is_its_row_s_epoch_scaled_by_its_runs_and_the_epochs():
    sweep = _sweep()
    based_knobs = [ModelConfig("based", 16).knob_dict(), {"feature_dim": 99}]
    table = _table([_row("attention", 32, 1.5), _row("based", 16, 0.5, runs=8, knobs=based_knobs)])
    out = project(sweep, set(), table)
    by_name = {}
    for s in out["stacks"]:
        by_name.setdefault(s["stack"], []).append(s)
    n_lrs = len(sweep.lrs)
    assert n_lrs == 2  # tiny's: each model's runs are one stack of 2 (max_stack_runs 2)
    (attention,) = by_name["attention d=32"]
    assert attention["runs"] == 2 and attention["seconds"] == 1.5 * 2 / 4 * 3
    assert by_name["based d=16"][0]["seconds"] == 0.5 * 2 / 8 * 3
    (h3,) = {s["why"] for s in by_name["h3 d=32"]}  # no row: never guessed
    assert h3 == "no measured row of h3 at d = 32, layers mixer"
    assert out["unprojected_runs"] == n_lrs and out["projected_runs"] == 2 * n_lrs
    assert out["projected_s"] == sum(s["seconds"] for s in out["stacks"] if s["seconds"] is not None)
    assert attention["compile_s"] is None and out["projected_compile_s"] == 0  # these rows timed no first steps


def test_a_stack_s_compilation_is_its_row_s_first_steps_and_first_evaluation_once_whatever_its_runs():
    sweep = _sweep()
    timed = _row("attention", 32, 1.5) | {"first_steps_s": 40.0, "eval_first_s": 20.0}
    out = project(sweep, set(), _table([timed, _row("based", 16, 0.5) | {"first_steps_s": 7.0, "eval_first_s": None}]))
    (attention,) = [s for s in out["stacks"] if s["stack"] == "attention d=32"]
    (based,) = [s for s in out["stacks"] if s["stack"] == "based d=16"]
    assert attention["compile_s"] == 60.0 and attention["seconds"] == 1.5 * 2 / 4 * 3  # not scaled by runs or epochs
    assert based["compile_s"] is None and based["seconds"] == 0.5 * 2 / 4 * 3  # half measured: not a projection
    assert out["projected_compile_s"] == 60.0


def test_only_the_runs_left_are_projected_and_a_row_of_another_topology_does_not_serve():
    sweep = _sweep()
    table = _table([_row("attention", 32, 1.0), _row("h3", 32, 9.0), _row("based", 16, 1.0, status="failed")])
    done = {r.run_id for r in sweep.runs() if r.model.family == "attention"}
    out = project(sweep, done, table)
    assert {s["stack"] for s in out["stacks"]} == {"based d=16", "h3 d=32"}  # attention's runs are done
    assert all(s["seconds"] is None for s in out["stacks"])  # based's row failed; h3's row is a hybrid's
    assert out["projected_s"] == 0 and out["unprojected_runs"] == 2 * len(sweep.lrs)


def test_a_stack_with_knobs_its_row_did_not_measure_is_not_projected():
    sweep = _sweep()
    table = _table([_row("based", 16, 1.0, knobs=[{"feature_dim": 99}])])
    (based,) = [s for s in project(sweep, set(), table)["stacks"] if s["stack"] == "based d=16"]
    assert based["seconds"] is None and based["why"] == "its row measured other knobs ([{'feature_dim': 99}])"


def test_a_row_without_its_topology_was_measured_hybrid():
    assert row_layers(_row("h3", 32, 1.0)) == "hybrid"
    assert row_layers(_row("h3", 32, 1.0, layers="mixer")) == "mixer"
    assert row_layers({"path": "generic"}) is None


@pytest.mark.parametrize(
    ("settings", "why"),
    [
        ({"example_scale": 0.1}, "scaled data"),
        ({"batch_size": 7}, "the table's batch is 7"),
        ({"data_preset": "based-fig2"}, "the table's data are based-fig2's"),
        ({"data_preset": "zoology-fig2"}, "the table's data_preset 'zoology-fig2' is not one sweep's data"),
    ],
)
def test_a_table_of_other_data_or_batch_projects_nothing(settings, why):
    out = project(_sweep(), set(), _table([_row("attention", 32, 1.0)], **settings))
    assert out["projected_runs"] == 0 and all(why in s["why"] for s in out["stacks"])


def test_the_dry_run_prints_the_projection(tmp_path, capsys):
    table = tmp_path / "speed.json"
    (base,) = get_preset("tiny")
    family, d = base.models[0].family, base.models[0].d_model
    knobs = [m.knob_dict() for m in base.models if m.family == family]
    table.write_text(json.dumps(_table([_row(family, d, 2.0, layers=base.models[0].layers, knobs=knobs)])))
    argv = ["run", "--preset", "tiny", "--out", str(tmp_path / "r.jsonl"), "--dry-run", "--speed-table", str(table)]
    assert frontier_main(argv) == 0
    (summary,) = json.loads(capsys.readouterr().out)
    projection = summary["projection"]
    assert projection["device"] == "a GPU" and projection["projected_runs"] > 0 and projection["projected_s"] > 0


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ([], "--speed-table: only with --dry-run"),
        (["--dry-run"], "cannot read a JSON speed table"),
    ],
)
def test_bad_speed_table_use_is_one_line_and_exit_2(tmp_path, capsys, extra, named):
    missing = str(tmp_path / "none.json")
    argv = ["run", "--preset", "tiny", "--out", str(tmp_path / "r.jsonl"), "--speed-table", missing, *extra]
    assert frontier_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and named in err
    assert not (tmp_path / "r.jsonl").exists()


def test_a_json_that_is_not_a_speed_table_is_refused(tmp_path, capsys):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"rows": []}))
    argv = ["run", "--preset", "tiny", "--out", str(tmp_path / "r.jsonl"), "--dry-run", "--speed-table", str(other)]
    assert frontier_main(argv) == 2
    assert "not benchmarks/frontier_speed.py's families table" in capsys.readouterr().err
