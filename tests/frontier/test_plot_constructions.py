"""The frontier plot's construction points come from the constructions' own resource reports."""

from __future__ import annotations

from mqarkit.constructions import build
from mqarkit.gpu.frontier.plot import construction_points


def test_construction_points_are_measured_states_at_float32() -> None:
    points = construction_points(vocab_size=64, seq_len=32, num_kv_pairs=4)
    assert [p["name"] for p in points] == ["attention_signcode", "based_taylor", "baseconv_data_independent"]
    for point in points:
        assert point["source"] == "measured" and point["accuracy"] == 1.0
        state = build(point["name"], vocab_size=64, seq_len=32, num_kv_pairs=4).resources().measured.state_numbers
        assert point["state_bytes"] == 4 * state


def test_construction_points_skip_sizes_outside_a_range() -> None:
    # 4 * num_kv_pairs > seq_len: no construction accepts it, none is drawn.
    assert construction_points(vocab_size=64, seq_len=32, num_kv_pairs=9) == []


def test_slice_mean_accuracy_is_the_unweighted_mean_of_the_slices() -> None:
    from mqarkit.gpu.frontier.plot import best_per_config
    from mqarkit.gpu.frontier.stats import slice_mean_accuracy

    def record(lr: float, accs: list[float]) -> dict:
        slices = [
            {"accuracy": a, "seq_len": 16 * 4**i, "num_kv_pairs": 4 ** (i + 1), "num_examples": 10}
            for i, a in enumerate(accs)
        ]
        return {"sweep": "s", "family": "based", "model": {"family": "based"}, "lr": lr, "accuracy": slices}

    a, b = record(1e-3, [1.0, 0.0]), record(1e-2, [0.0, 0.9])
    assert slice_mean_accuracy(a) == 0.5 and slice_mean_accuracy(b) == 0.45
    # query-weighted, b would win (its slice has 4x the queries); by the slice mean, a is the best of the two
    assert best_per_config([a, b]) == [a]
