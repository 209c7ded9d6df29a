"""Records set against the papers' figures: the verdict rule, the [B] Fig. 2 ranges and ordering, the [Z] Fig. 2
points, and ``mqarkit frontier compare`` (inputs checked first, exit 2)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from mqarkit.cli import main as cli_main
from mqarkit.gpu.frontier.compare import (
    INCOMPLETE,
    compare_points,
    compare_ranges,
    comparison_markdown,
    family_coverage,
    front_order,
    verdict,
)
from mqarkit.gpu.frontier.paper_anchors import BASED_FIG2, READ_OFF, ZOOLOGY_FIG2, PointAnchor, RangeAnchor
from mqarkit.gpu.frontier.presets import load_preset
from mqarkit.gpu.frontier.stats import summarise


def _record(family, d_model, acc, *, seed=0, lr=1e-3, state=1000, sweep="based-fig2", seq_len=64, **knobs) -> dict:
    return {
        "run_id": f"{sweep}/{family}-d{d_model}-lr{lr:.3e}-s{seed}",
        "status": "finished",
        "sweep": sweep,
        "family": family,
        "model": {"family": family, "d_model": d_model, "mixer": None, **knobs},
        "lr": lr,
        "seed": seed,
        "epochs_max": 32,
        "state_bytes": state,
        "accuracy": [{"seq_len": seq_len, "num_kv_pairs": 4, "accuracy": acc}],
    }


@pytest.mark.parametrize(
    ("relation", "value", "low", "high", "expected"),
    [
        ("≈", 0.5, 0.5, 0.5, "agrees"),
        ("≈", 0.5, 0.5 + READ_OFF + 0.01, 0.6, "above"),
        ("≈", 0.5, 0.3, 0.5 - READ_OFF - 0.01, "below"),
        ("≈", 0.5, 0.1, 0.9, "agrees"),  # a wide interval cannot be told apart from the paper
        (">", 0.9, 0.5, 0.9 - READ_OFF, "below"),
        (">", 0.9, 0.5, 0.9 - READ_OFF + 0.01, "agrees"),
        ("≤", 0.9, 0.9 + READ_OFF + 0.01, 1.0, "above"),
        ("≤", 0.9, 0.9 + READ_OFF, 1.0, "agrees"),
    ],
)
def test_verdict_rule(relation, value, low, high, expected):
    assert verdict(relation, value, low, high) == expected


def test_verdict_refuses_a_bad_relation_or_interval():
    with pytest.raises(ValueError, match="relation"):
        verdict("<", 0.5, 0.4, 0.6)
    with pytest.raises(ValueError, match="low <= high"):
        verdict("≈", 0.5, 0.6, 0.4)
    with pytest.raises(ValueError, match="finite"):
        verdict("≈", 0.5, float("nan"), 0.4)


def test_ranges_take_the_lowest_and_highest_configuration_with_their_intervals():
    anchor = RangeAnchor("based", 0.54, 1.0, (12.5, 18), "test")
    records = [
        _record("based", 48, 0.50, seed=0, state=2**13),
        _record("based", 48, 0.56, seed=1, state=2**13),
        _record("based", 128, 0.80, seed=0, state=2**17),
        _record("based", 128, 0.84, seed=1, state=2**17),
        _record("mamba", 64, 0.6, state=2**14),  # another family: not in based's range
    ]
    (row,) = compare_ranges(summarise(records), [anchor])
    assert row["configurations"] == 2
    assert row["lowest"].model["d_model"] == 48 and row["lowest"].mean == pytest.approx(0.53)
    assert row["lowest_verdict"] == "agrees"
    assert row["highest"].model["d_model"] == 128 and row["highest_verdict"] == "below"  # 0.84 < 1.0 − 0.03
    assert row["log2_bytes"] == (13.0, 17.0)


def test_a_family_with_runs_missing_is_shown_but_not_judged():
    anchor = RangeAnchor("sliding_window", 0.07, 0.94, (13, 19), "t")
    results = summarise([_record("sliding_window", 128, 0.5, state=2**16)])
    (row,) = compare_ranges(results, [anchor], {"sliding_window": (48, 96)})
    assert row["runs"] == (48, 96) and row["lowest_verdict"] == row["highest_verdict"] == INCOMPLETE
    (row,) = compare_ranges(results, [anchor], {"sliding_window": (96, 96)})
    assert "runs" not in row and row["highest_verdict"] == "below"


def test_family_coverage_counts_the_presets_runs_at_the_records_seeds():
    (sweep,) = load_preset("based-fig2")
    runs = [run for run in replace(sweep, seeds=(0, 1, 2)).runs() if run.model.family == "sliding_window"]
    records = [
        {"run_id": runs[0].run_id, "seed": 0, "sweep": sweep.name},
        {"run_id": "x", "seed": 2, "sweep": sweep.name},
        {"run_id": "y", "seed": 1, "sweep": "another"},  # another sweep's seeds plan nothing here
    ]
    coverage = family_coverage(records, "based-fig2")
    assert coverage["sliding_window"] == (1, 64) and len(runs) == 96  # planned at the preset's seed 0 and seed 2
    assert coverage["attention"] == (0, 16)
    assert family_coverage([{"run_id": "x", "seed": 0, "sweep": "my-fig2"}], "based-fig2") == {}  # no plan


def test_a_family_without_records_is_reported_not_dropped():
    (row,) = compare_ranges(summarise([_record("based", 64, 0.7)]), [RangeAnchor("h3", 0.19, 0.36, (19, 22), "t")])
    assert row["configurations"] == 0 and "lowest" not in row


def test_front_order_compares_with_the_best_higher_ranked_result_at_no_more_state():
    records = [
        _record("attention", 64, 0.99, state=2**19),
        _record("based", 64, 0.90, state=2**15),
        _record("based", 128, 0.95, state=2**17),
        _record("mamba", 64, 0.50, state=2**16),  # Based at 2^15 (0.90) beats it: holds
        _record("mamba", 128, 0.97, state=2**18),  # Based's best at <= 2^18 is 0.95, one seed each: reversed
        _record("h3", 64, 0.2, state=2**14),  # no Based or attention at <= 2^14
        _record("gla", 64, 1.0, state=2**10),  # not in the paper's figure: never ordered
    ]
    rows = front_order(summarise(records), {a.family for a in BASED_FIG2})
    verdicts = {(r["lower"].model["family"], r["lower"].model["d_model"], r["rank"]): r["verdict"] for r in rows}
    assert verdicts[("mamba", 64, 1)] == "holds"
    assert verdicts[("mamba", 128, 1)] == "reversed"
    assert verdicts[("mamba", 128, 0)] == "no point at or below its state"
    assert verdicts[("h3", 64, 1)] == "no point at or below its state"
    assert verdicts[("based", 128, 0)] == "no point at or below its state"
    assert not any(r["lower"].model["family"] == "gla" for r in rows)
    reversed_row = next(r for r in rows if r["verdict"] == "reversed")
    assert reversed_row["higher"].model["d_model"] == 128  # the best Based at <= 2^18, not the first found


def test_front_order_within_intervals_when_the_seeds_overlap():
    records = [
        _record("based", 64, 0.70, seed=0, state=2**15),
        _record("based", 64, 0.90, seed=1, state=2**15),
        _record("mamba", 64, 0.78, seed=0, state=2**16),
        _record("mamba", 64, 0.86, seed=1, state=2**16),
    ]
    rows = front_order(summarise(records), {"based", "mamba"})
    (row,) = [r for r in rows if r["rank"] == 1]
    assert row["verdict"] == "within intervals"  # Based's mean 0.80 < 0.82, intervals [0.70, 0.90] and [0.78, 0.86]


def test_points_match_family_length_and_width():
    anchors = [PointAnchor("long_conv", 128, 512, ">", 0.9, "t"), PointAnchor("hyena", 64, 64, "≤", 0.9, "t")]
    records = [
        _record("long_conv", 512, 0.95, sweep="zoology-fig2-N128", seq_len=128),
        _record("long_conv", 512, 0.20, sweep="zoology-fig2-N64", seq_len=64),  # another N: not this anchor's
    ]
    rows = compare_points(summarise(records), anchors)
    assert rows[0]["verdict"] == "agrees" and rows[0]["result"].mean == pytest.approx(0.95)
    assert rows[1]["result"] is None and rows[1]["verdict"] is None


def test_zoology_anchors_cover_every_length_and_width_once_per_family():
    keys = [(a.family, a.seq_len, a.d_model) for a in ZOOLOGY_FIG2]
    assert len(keys) == len(set(keys))
    assert sum(a.family == "long_conv" for a in ZOOLOGY_FIG2) == 16
    assert sum(a.family == "hyena" for a in ZOOLOGY_FIG2) == 16
    above = {(a.seq_len, a.d_model) for a in ZOOLOGY_FIG2 if a.family == "long_conv" and a.relation == ">"}
    assert above == {(64, 128), (64, 256), (64, 512), (128, 512), (256, 512)}


def test_markdown_names_the_budget_and_the_families_not_in_the_paper():
    records = [_record("attention", 64, 1.0, state=2**19), _record("gla", 64, 0.9, state=2**14)]
    text = comparison_markdown(records, "based-fig2")
    assert "32 epochs" in text and "Not in the paper's figure, so not compared: gla." in text
    assert "| mamba | 0 |" in text  # a family of the paper without records is a row saying so


def test_records_of_other_sweeps_are_refused_with_the_sweeps_named():
    with pytest.raises(ValueError, match="zoology-fig2-N64"):
        comparison_markdown([_record("attention", 64, 1.0)], "zoology-fig2")
    mine = [_record("attention", 64, 1.0, state=2**19, sweep="my-fig2")]
    with pytest.raises(ValueError, match=r"\(based-fig2\)"):
        comparison_markdown(mine, "based-fig2")
    assert "| attention | 1 |" in comparison_markdown(mine, "based-fig2", sweeps=["my-fig2"])
    diverged = [_record("attention", 64, 0.0) | {"status": "diverged"}]
    with pytest.raises(ValueError, match="every run of based-fig2's sweeps diverged"):
        comparison_markdown(diverged, "based-fig2")


def test_cli_writes_the_comparison_and_refuses_bad_input(tmp_path, capsys):
    results = tmp_path / "r.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in [_record("based", 64, 0.6, state=2**13)]))
    out = tmp_path / "cmp.md"
    assert cli_main(["frontier", "compare", "--paper", "based-fig2", "--results", str(results), "--out", str(out)]) == 0
    text = out.read_text()  # the record's run id is none of the preset's: 0 of its runs, the range not judged
    assert "| based | 1 (0 of 36 runs) |" in text and "| not judged |" in text
    assert cli_main(["frontier", "compare", "--paper", "based-fig2", "--results", str(tmp_path / "none.jsonl")]) == 2
    assert cli_main(["frontier", "compare", "--paper", "zoology-fig2", "--results", str(results)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "none.jsonl is not a file" in err[0] and "no run of the sweeps" in err[1]
