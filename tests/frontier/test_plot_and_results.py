"""The notebook surface: the frontier figure as a matplotlib Figure (no backend switch) and the records as a table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mqarkit.gpu.frontier import frontier_figure, load_results, result_rows, run
from mqarkit.gpu.frontier.presets import get_preset
from mqarkit.gpu.frontier.records import read_records


@pytest.fixture(scope="module")
def tiny_records(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("tiny") / "tiny.jsonl"
    assert run(get_preset("tiny", epochs=1), out, "cpu", log=lambda s: None) == 12
    return read_records(out)


def test_figure_is_returned_and_the_backend_is_untouched(tiny_records):
    code = (
        "import matplotlib, json, sys\n"
        "matplotlib.use('svg')\n"
        "from mqarkit.gpu.frontier import frontier_figure\n"
        "records = [json.loads(line) for line in sys.stdin]\n"
        "fig = frontier_figure(records)\n"
        "print(matplotlib.get_backend(), type(fig).__name__, len(fig.axes[0].collections) >= 5)\n"
    )
    lines = "".join(__import__("json").dumps(r) + "\n" for r in tiny_records)
    proc = subprocess.run([sys.executable, "-c", code], input=lines, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["svg", "Figure", "True"]


def test_a_redraw_from_the_same_records_writes_the_same_svg(tiny_records, tmp_path):
    from mqarkit.gpu.frontier.plot import draw

    first = draw(tiny_records, tmp_path / "a" / "fig")
    again = draw(tiny_records, tmp_path / "b" / "fig")
    svg_a, svg_b = (next(p for p in paths if p.suffix == ".svg").read_bytes() for paths in (first, again))
    assert svg_a == svg_b and b"<dc:date>" not in svg_a


def test_title_names_the_sweep_its_budget_and_reductions(tiny_records):
    title = frontier_figure(tiny_records).axes[0].get_title()
    assert "tiny" in title and "1 epochs" in title and "2 lrs" in title and "epochs 2 -> 1" in title


def test_title_counts_a_shipped_sweeps_runs_instead_of_the_commands_selections(tiny_records):
    """A command that ran some of a shipped sweep's families (``--families``) reduced no run: the title says how many
    of the sweep's runs the records hold, not the selection; for a sweep no preset ships, the selection stays."""
    from mqarkit.gpu.frontier.plot_style import default_title

    selected = [r | {"notes": [*r["notes"], "families ['based']"]} for r in tiny_records if r["family"] == "based"]
    title = default_title(selected)
    assert "epochs 2 -> 1" in title and "families" not in title
    assert f"not all run: tiny: {len(selected)} of its 12 runs" in title
    assert "not all run" not in default_title(tiny_records)  # all 12
    own = [r | {"sweep": "my-sweep"} for r in selected]
    assert "selected: families ['based']" in default_title(own) and "not all run" not in default_title(own)


def test_title_counts_a_shipped_sweeps_runs_at_the_seeds_of_its_records(tiny_records):
    """Records run at more seeds than the preset ships are counted against the sweep at those seeds: the based runs
    of seeds 0 and 1 are half of the sweep's 24 runs at two seeds, not all of its 12 at one."""
    from mqarkit.gpu.frontier.plot_style import default_title

    based = [r for r in tiny_records if r["family"] == "based"]
    other_seed = [r | {"seed": 1, "run_id": r["run_id"].removesuffix("-s0") + "-s1"} for r in based]
    assert all(r["run_id"].endswith("-s0") for r in based)
    assert f"not all run: tiny: {2 * len(based)} of its 24 runs" in default_title(based + other_seed)
    everything = tiny_records + [
        r | {"seed": 1, "run_id": r["run_id"].removesuffix("-s0") + "-s1"} for r in tiny_records
    ]
    assert "not all run" not in default_title(everything)


def test_title_tells_a_reduction_from_a_change_that_keeps_the_budget(tiny_records):
    """More seeds than the sweep ships (the paper-budget figure's three) or another data seed reduce nothing: the
    title lists them as changed, apart from the reductions."""
    from mqarkit.gpu.frontier.plot_style import default_title

    more = [r | {"notes": [*r["notes"], "seeds [0] -> [0, 1, 2]", "data_seed 0 -> 3"]} for r in tiny_records]
    lines = default_title(more).splitlines()
    assert "reduced: epochs 2 -> 1" in lines
    assert "changed: data_seed 0 -> 3; seeds [0] -> [0, 1, 2]" in lines
    assert not any(line.startswith("reduced:") and "seeds" in line for line in lines)


@pytest.mark.parametrize(
    ("note", "reduces"),
    [
        ("epochs 32 -> 1", True),
        ("epochs 8 -> 32", False),
        ("lrs [0.001, 0.003162, 0.01, 0.03162] -> [0.001, 0.01]", True),
        ("lrs [0.001, 0.01] -> [0.001, 0.003162, 0.01]", False),
        ("seeds [0] -> [0, 1, 2]", False),
        ("seeds [0, 1, 2] -> [0]", True),
        ("seeds [0] -> [1]", True),
        ("examples x0.1", True),
        ("data_seed 0 -> 3", False),
        ("families ['based']", False),
        ("d_models [64]", False),
        ("a note of a sweep file's own", True),
    ],
)
def test_which_notes_reduce_the_budget(note, reduces):
    from mqarkit.gpu.frontier.presets import note_reduces

    assert note_reduces(note) is reduces


def test_runs_without_a_measured_state_are_left_out_and_counted(tiny_records):
    unmeasured = {**tiny_records[0], "state_numbers": None, "state_bytes": None, "run_id": "x", "lr": 9.0}
    fig = frontier_figure([*tiny_records, unmeasured])
    assert any("1 run(s) without a measured state not drawn" in t.get_text() for t in fig.texts)
    with pytest.raises(ValueError, match="no run has a measured state"):
        frontier_figure([unmeasured])
    with pytest.raises(ValueError, match="no finished runs"):
        frontier_figure([])


def test_results_table_has_one_row_per_run_and_slice(tiny_records, tmp_path):
    rows = result_rows(tiny_records)
    assert len(rows) == 12 * 2
    based = [r for r in rows if r["family"] == "based"]
    assert {r["feature_dim"] for r in based} == {4, 8} and all(r["state_measured"] for r in rows)
    assert {(r["seq_len"], r["num_kv_pairs"]) for r in rows} == {(16, 2), (32, 8)}
    import pandas as pd  # an optional extra of the package, part of the dev extra the tests install

    path = tmp_path / "r.jsonl"
    path.write_text("".join(__import__("json").dumps(r) + "\n" for r in tiny_records))
    frame = load_results(path)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 24
    means = frame.groupby("run_id")["accuracy"].mean()
    assert (abs(means - frame.groupby("run_id")["slice_mean_accuracy"].first()) < 1e-12).all()


def _zrecord(sweep: str, n: int, family: str, d_model: int, lr: float, seed: int, acc: float) -> dict:
    return {
        "status": "finished",
        "run_id": f"{sweep}/{family}-d{d_model}-lr{lr}-s{seed}",
        "sweep": sweep,
        "family": family,
        "model": {"family": family, "d_model": d_model, "mixer": None, "vocab_size": 8192},
        "lr": lr,
        "seed": seed,
        "epochs_max": 64,
        "state_bytes": 4 * d_model,
        "accuracy": [{"seq_len": n, "num_kv_pairs": n // 16, "num_examples": 10, "accuracy": acc}],
    }


def test_width_figure_has_a_panel_per_sweep_and_a_line_per_family(tmp_path):
    from mqarkit.gpu.frontier.width_plot import width_figure

    records = [
        _zrecord(f"z-N{n}", n, fam, d, lr, s, 0.1 * s + d / 1024)
        for n in (64, 256)
        for fam in ("attention", "mamba")
        for d in (64, 128)
        for lr in (1e-3, 1e-2)
        for s in (0, 1)
    ]
    fig = width_figure(records)
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["N=64, D=4", "N=256, D=16"]
    assert all(len(ax.containers) == 2 for ax in fig.axes)  # an error-bar line per family
    assert "2 seed(s)" in fig.texts[0].get_text()
    path = tmp_path / "z.jsonl"
    path.write_text("".join(__import__("json").dumps(r) + "\n" for r in records))
    from mqarkit.gpu.frontier.plot import main as plot_main

    assert plot_main(["--results", str(path), "--out", str(tmp_path / "w"), "--kind", "width"]) == 0
    assert (tmp_path / "w.png").exists() and (tmp_path / "w.svg").exists()


def test_the_notes_reduce_writes_are_read_as_what_they_are():
    """The notes as :func:`reduce` writes them (not hand-written copies): fewer epochs and learning rates and scaled
    examples reduce, more seeds and another data seed do not."""
    from mqarkit.gpu.frontier.presets import load_preset, note_reduces, reduce

    (sweep,) = load_preset("tiny")
    (more,) = reduce([sweep], seeds=(0, 1, 2), data_seed=5)
    (fewer,) = reduce([sweep], epochs=1, lrs=sweep.lrs[:1], example_scale=0.5, seeds=(1,))
    assert [note_reduces(n) for n in more.notes] == [False, False]
    assert [note_reduces(n) for n in fewer.notes] == [True, True, True, True]
