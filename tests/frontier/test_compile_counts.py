"""``benchmarks/compile_counts.py``: the graphs dynamo compiles per sequence length, counted through the model's
compiled step (backend ``aot_eager``: dynamo and autograd's tracing, no code generation)."""

from __future__ import annotations

import json

from tests.frontier.conftest import load_benchmark


def test_h3_compiles_once_for_its_toeplitz_lengths_and_the_report_says_so(tmp_path, monkeypatch):
    """H3's long convolutions up to 256 positions take the Toeplitz form, which holds for a symbolic length: the
    second and third lengths add no graph. (Its ``unfold`` form compiled again at each.)"""
    script = load_benchmark("compile_counts", monkeypatch)
    argv = ["--families", "h3", "--d-model", "16", "--lengths", "8", "16", "32", "--backend", "aot_eager"]
    assert script.main([*argv, "--out-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "compile_counts.json").read_text())
    (h3,) = report["families"]
    assert h3["layers"] == "mixer"
    assert [x["graphs"] for x in h3["lengths"]] == [1, 0, 0]  # H3 has no graph break: one graph, compiled once
    assert "| h3 | mixer |" in (tmp_path / "compile_counts.md").read_text()


def test_a_bad_family_is_refused_in_one_line(monkeypatch, capsys):
    script = load_benchmark("compile_counts", monkeypatch)
    assert script.main(["--families", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("compile_counts.py: --families: ['nope']") and err.count("\n") == 1
