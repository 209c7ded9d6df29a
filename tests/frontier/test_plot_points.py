"""``mqarkit plot --points``: measured exported checkpoints placed on the frontier next to the trained models, read
from a JSON file (the frontier wing does not import the construction wing that measured them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bad_inputs import CliCase, assert_cli_refuses

from mqarkit.gpu.frontier.plot import POINTS_LABEL, frontier_figure, load_points_file
from mqarkit.gpu.frontier.records import read_records

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"


@pytest.fixture(scope="module")
def committed_records() -> list[dict]:
    return read_records(RESULTS / "frontier.jsonl")


def test_the_committed_exports_are_points_in_the_frontier_units(committed_records) -> None:
    points = load_points_file(RESULTS / "reference_exports.json")
    data = json.loads((RESULTS / "reference_exports.json").read_text())
    assert [p["name"] for p in points] == [r["name"] for r in data["checkpoints"]]
    # same configuration, same units: an exported sliding window of block_size b at d = 128 has the trained one's state
    trained = {r["model"]["window"]: r["state_bytes"] for r in committed_records if r["family"] == "sliding_window"}
    exported = {p["name"]: p["state_bytes"] for p in points if p["family"] == "sliding_window"}
    for b, state in trained.items():
        assert exported[f"sliding window b={b} (d=128)"] == state


def test_the_figure_draws_the_points_with_their_own_marker_and_label(committed_records) -> None:
    points = [
        {"name": "a", "state_bytes": 1000, "accuracy": 0.25, "family": "sliding_window"},
        {"name": "b", "state_bytes": 5000.0, "accuracy": 1.0, "family": "attention_signcode"},
    ]
    fig = frontier_figure(committed_records, points=points)
    ax = fig.axes[0]
    drawn = [c for c in ax.collections if c.get_gid() == "exported-checkpoints"]
    assert len(drawn) == 1 and drawn[0].get_label() == POINTS_LABEL
    assert drawn[0].get_offsets().tolist() == [[1000.0, 0.25], [5000.0, 1.0]]
    assert POINTS_LABEL in [t.get_text() for t in ax.get_legend().get_texts()]
    plain = frontier_figure(committed_records)
    assert not [c for c in plain.axes[0].collections if c.get_gid() == "exported-checkpoints"]


def test_the_command_writes_the_figure_with_points(tmp_path, capsys) -> None:
    from mqarkit.gpu.frontier.plot import main as plot_main

    argv = ["--results", str(RESULTS / "frontier.jsonl"), "--out", str(tmp_path / "f")]
    assert plot_main([*argv, "--points", str(RESULTS / "reference_exports.json")]) == 0
    assert (tmp_path / "f.png").exists() and (tmp_path / "f.svg").exists()
    assert "exported-checkpoints" in (tmp_path / "f.svg").read_text()


PLOT = ("plot", "--results", str(RESULTS / "frontier.jsonl"), "--out", "{dir}/f")
BAD = [
    ("missing", None, "--points: {dir}/nope.json is not a file"),
    ("not-json", "{nope", "is not a readable JSON file"),
    ("no-list", '{"records": []}', "needs a non-empty list 'checkpoints'"),
    ("empty-list", '{"checkpoints": []}', "needs a non-empty list 'checkpoints'"),
    ("entry-not-object", '{"checkpoints": [3]}', "checkpoints[0] must be an object"),
    ("no-name", '{"checkpoints": [{"state_bytes": 8, "accuracy": 0.5}]}', "checkpoints[0].name"),
    ("state-negative", '{"checkpoints": [{"name": "x", "state_bytes": -1, "accuracy": 0.5}]}', "state_bytes=-1"),
    ("state-text", '{"checkpoints": [{"name": "x", "state_bytes": "8", "accuracy": 0.5}]}', "state_bytes='8'"),
    ("accuracy-above-one", '{"checkpoints": [{"name": "x", "state_bytes": 8, "accuracy": 1.5}]}', "accuracy=1.5"),
    ("accuracy-missing", '{"checkpoints": [{"name": "x", "state_bytes": 8}]}', "accuracy=None"),
]


@pytest.mark.parametrize(("case_id", "content", "names"), BAD, ids=[b[0] for b in BAD])
def test_bad_points_files_are_refused_on_one_line(case_id, content, names, capsys, tmp_path) -> None:
    path = tmp_path / ("nope.json" if content is None else "points.json")
    if content is not None:
        path.write_text(content)
    case = CliCase(case_id, (*PLOT, "--points", str(path)), names.format(dir=tmp_path))
    assert_cli_refuses(case, capsys, tmp_path)


def test_points_only_with_the_frontier_kind(capsys, tmp_path) -> None:
    points = str(RESULTS / "reference_exports.json")
    case = CliCase("width", (*PLOT, "--kind", "width", "--points", points), "--points: only with --kind frontier")
    assert_cli_refuses(case, capsys, tmp_path)
