"""Results from runs: the learning rate chosen by the mean over seeds, a bootstrap interval over seeds, diverged runs
left out and counted, and the table."""

from __future__ import annotations

import numpy as np
import pytest

from mqarkit.gpu.frontier.plot_style import FAMILY_STYLE, label_order, style
from mqarkit.gpu.frontier.stats import bootstrap_interval, markdown_table, summarise


def _record(lr: float, seed: int, acc: float, *, status: str = "finished", d_model: int = 64) -> dict:
    return {
        "status": status,
        "sweep": "s",
        "family": "based",
        "model": {"family": "based", "d_model": d_model, "feature_dim": 16, "mixer": None},
        "lr": lr,
        "seed": seed,
        "state_bytes": 1000,
        "accuracy": [{"seq_len": 64, "num_kv_pairs": 4, "accuracy": acc}],
    }


def test_the_learning_rate_is_chosen_by_the_mean_over_seeds_not_the_best_run():
    # lr 1e-2 has the single best run (0.99) but a worse mean (0.55) than lr 1e-3 (0.70)
    records = [_record(1e-2, 0, 0.99), _record(1e-2, 1, 0.11), _record(1e-3, 0, 0.7), _record(1e-3, 1, 0.7)]
    (result,) = summarise(records)
    assert result.lr == 1e-3 and result.mean == pytest.approx(0.7) and result.seeds == 2
    assert (result.low, result.high) == (pytest.approx(0.7), pytest.approx(0.7))


def test_bootstrap_interval_brackets_the_mean_and_is_reproducible():
    values = [0.62, 0.71, 0.80]
    low, high = bootstrap_interval(values)
    assert low < np.mean(values) < high and (low, high) == bootstrap_interval(values)
    # within the values' range (with 3 seeds a resample of one value repeated has weight 1/27 > 2.5%: the range)
    assert low == pytest.approx(min(values)) and high == pytest.approx(max(values))
    assert bootstrap_interval([0.3]) == (0.3, 0.3)
    wider = bootstrap_interval([0.2, 0.71, 0.99])
    assert wider[1] - wider[0] > high - low
    with pytest.raises(ValueError, match="finite"):
        bootstrap_interval([0.1, float("nan")])
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval(values, level=1.0)


def test_diverged_runs_are_left_out_and_counted():
    records = [_record(1e-2, 0, 0.0, status="diverged"), _record(1e-3, 0, 0.4), _record(1e-3, 1, 0.6)]
    (result,) = summarise(records)
    assert result.diverged == 1 and result.lr == 1e-3 and result.mean == pytest.approx(0.5)
    assert summarise([_record(1e-2, 0, 0.0, status="diverged")]) == []  # nothing to show


def test_table_gives_mean_interval_seeds_and_diverged():
    records = [_record(1e-3, s, a) for s, a in ((0, 0.5), (1, 0.6), (2, 0.7))] + [_record(1e-3, 0, 0.9, d_model=128)]
    table = markdown_table(summarise(records))
    lines = table.strip().splitlines()
    assert len(lines) == 4 and "95% interval" in lines[0]
    assert "| 0.600 | [0." in lines[2] and "| 3 | 0 |" in lines[2]
    assert "n/a (1 seed)" in lines[3] and "d_model=128" in lines[3]


def test_the_two_topologies_of_one_family_are_two_configurations_and_two_series():
    hybrid = _record(1e-3, 0, 0.4)
    both = _record(1e-3, 0, 0.9)
    both["model"] = {**both["model"], "layers": "mixer"}
    results = sorted(summarise([hybrid, both]), key=lambda r: r.label)
    assert [(r.label, r.mean) for r in results] == [("based", 0.4), ("based (both layers)", 0.9)]
    labels = [r.label for r in results]
    # alone, the both-layers series takes its family's style; beside the hybrid, another one
    assert style("based (both layers)", 0, ["based (both layers)"]) == FAMILY_STYLE["based"]
    assert style("based", 0, labels) == FAMILY_STYLE["based"]
    assert style("based (both layers)", 1, labels) != FAMILY_STYLE["based"]
    assert sorted(["zzz", "based (both layers)", "attention"], key=label_order) == [
        "attention",
        "based (both layers)",
        "zzz",
    ]
