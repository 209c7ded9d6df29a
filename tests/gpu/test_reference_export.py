"""Reference-format exports: the checkpoints recall in our reference-layout model, on the reference generator's data."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mqarkit.constructions._balanced_codes import balanced_code_width, balanced_codes
from mqarkit.constructions.sliding_window import recalled
from mqarkit.gpu.export_cli import main as export_main
from mqarkit.gpu.reference_eval import evaluate_reference, query_predictions, reference_batch
from mqarkit.gpu.reference_export import (
    NO_MATCH_TOKEN,
    NOT_EXPORTABLE,
    export_reference,
    no_match_bias,
    sufficient_beta,
)
from mqarkit.gpu.reference_model import from_config, load_reference_model, load_reference_state_dict, reference_key_map
from mqarkit.oracle import ambiguous_queries, expected_answers


def loaded(exported, dtype=torch.float64):
    return load_reference_model(exported.config, exported.state).to(dtype)


def score(exported, seq_len, num_kv_pairs, *, random_filler, n=32, seed=0, window=None, dtype=torch.float64):
    return evaluate_reference(
        loaded(exported, dtype),
        vocab_size=exported.config["vocab_size"],
        seq_len=seq_len,
        num_kv_pairs=num_kv_pairs,
        num_examples=n,
        seed=seed,
        random_non_queries=random_filler,
        window=window,
    )


def test_balanced_codes_are_zero_mean_constant_norm_and_separated() -> None:
    assert balanced_code_width(8192) == 16 and balanced_code_width(12870) == 16 and balanced_code_width(12871) == 18
    codes = balanced_codes(300, 12)
    assert (codes.sum(axis=1) == 0).all()
    assert ((codes * codes).sum(axis=1) == 12).all()
    gram = codes @ codes.T
    off = gram[~np.eye(300, dtype=bool)]
    assert off.max() == 12 - 4  # distinct balanced codes differ in >= 2 entries
    assert len({tuple(r) for r in codes.tolist()}) == 300


def test_balanced_codes_reject_bad_widths() -> None:
    with pytest.raises(ValueError, match="width=5: must be an even int >= 4"):
        balanced_codes(10, 5)
    with pytest.raises(ValueError, match="cannot separate vocab_size=100"):
        balanced_codes(100, 6)


def test_sufficient_beta_is_the_causal_count() -> None:
    assert sufficient_beta(1024, 16) == math.log(4 * 1023) * 16 / 4


@pytest.mark.parametrize(("c", "d", "N", "D"), [(64, 24, 32, 4), (128, 32, 64, 16), (200, 40, 128, 8)])
def test_attention_export_recalls_every_unambiguous_query_small(c: int, d: int, N: int, D: int) -> None:
    exported = export_reference("attention_signcode", vocab_size=c, seq_len=N, num_kv_pairs=D, d_model=d)
    for random_filler in (False, True):
        s = score(exported, N, D, random_filler=random_filler, n=64)
        assert s.num_correct_unambiguous == s.num_queries - s.num_ambiguous


@pytest.mark.parametrize(("N", "D"), [(64, 4), (64, 16), (128, 8), (256, 16)])
def test_attention_export_at_the_paper_sizes(N: int, D: int) -> None:
    """[B] Fig. 2: d_model 64, c = 8192."""
    exported = export_reference("attention_signcode", vocab_size=8192, seq_len=N, num_kv_pairs=D)
    assert exported.config["d_model"] == 64 and exported.info["channels_used"] == 48
    s = score(exported, N, D, random_filler=True, n=16)
    assert s.num_correct_unambiguous == s.num_queries - s.num_ambiguous


@pytest.mark.slow
@pytest.mark.parametrize(("N", "D"), [(512, 128), (1024, 256)])
def test_attention_export_at_the_longest_paper_sizes(N: int, D: int) -> None:
    exported = export_reference("attention_signcode", vocab_size=8192, seq_len=N, num_kv_pairs=D)
    for random_filler in (False, True):
        s = score(exported, N, D, random_filler=random_filler, n=32)
        assert s.num_correct_unambiguous == s.num_queries - s.num_ambiguous


def test_one_checkpoint_serves_every_length_of_its_vocabulary() -> None:
    """beta is beta* at N = c (the generator asserts c > N): the export made with seq_len 64 recalls at N = 256."""
    exported = export_reference("attention_signcode", vocab_size=8192, seq_len=64, num_kv_pairs=4)
    assert exported.info["beta"] == sufficient_beta(8192, 16)
    for N, D in ((256, 64), (128, 32)):
        s = score(exported, N, D, random_filler=True, n=16)
        assert s.num_correct_unambiguous == s.num_queries - s.num_ambiguous


def test_attention_export_in_bfloat16_on_the_cpu() -> None:
    exported = export_reference("attention_signcode", vocab_size=8192, seq_len=256, num_kv_pairs=64)
    s = score(exported, 256, 64, random_filler=True, n=8, dtype=torch.bfloat16)
    assert s.dtype == "bfloat16"
    assert s.num_correct_unambiguous == s.num_queries - s.num_ambiguous


def recall_sets(exported, seq_len, num_kv_pairs, window, *, random_filler, n, seed=0, dtype=torch.float64):
    """(correctly answered, in the window (U8), the answers of the others): unambiguous queries as (example, slot)."""
    batch = reference_batch(exported.config["vocab_size"], seq_len, num_kv_pairs, n, seed, random_filler)
    pred = query_predictions(loaded(exported, dtype), batch.inputs, batch.query_positions)
    answers = np.take_along_axis(expected_answers(batch), batch.query_positions, axis=1)
    clear = ~np.take_along_axis(ambiguous_queries(batch), batch.query_positions, axis=1)
    inside = recalled(batch, window)
    correct = {tuple(q) for q in np.argwhere((pred == answers) & clear).tolist()}
    in_window = {tuple(q) for q in np.argwhere(inside & clear).tolist()}
    return correct, in_window, set(pred[~inside & clear].tolist())


SLIDING_CASES = [  # (c, d, N, D, w)
    (1024, 64, 64, 4, 8),
    (1024, 64, 128, 8, 32),
    (1024, 64, 256, 16, 64),
    (1024, 64, 256, 64, 100),
    (8192, 128, 256, 16, 65),
    (8192, 128, 512, 128, 257),
]


@pytest.mark.parametrize(("c", "d", "N", "D", "w"), SLIDING_CASES)
def test_sliding_window_export_recalls_exactly_the_u8_set(c: int, d: int, N: int, D: int, w: int) -> None:
    """The correctly answered unambiguous queries are exactly those whose pair lies in the window; the others are
    answered with the reserved no-match token (never a value), in both fillers."""
    exported = export_reference("sliding_window", vocab_size=c, seq_len=N, num_kv_pairs=D, window=w, d_model=d)
    assert exported.config["sequence_mixer"]["kwargs"]["configs"][1]["kwargs"]["block_size"] == w - 1
    for random_filler in (False, True):
        correct, in_window, others = recall_sets(exported, N, D, w, random_filler=random_filler, n=32)
        assert correct == in_window and 0 < len(in_window)
        assert others <= {NO_MATCH_TOKEN}


def test_sliding_window_exactness_in_float32_and_bfloat16() -> None:
    exported = export_reference("sliding_window", vocab_size=8192, seq_len=256, num_kv_pairs=32, window=65)
    for dtype in (torch.float32, torch.bfloat16):
        correct, in_window, others = recall_sets(exported, 256, 32, 65, random_filler=True, n=16, dtype=dtype)
        assert correct == in_window and others == {NO_MATCH_TOKEN}


def test_sliding_window_no_match_bias_lies_inside_its_proven_interval() -> None:
    exported = export_reference("sliding_window", vocab_size=8192, seq_len=1024, num_kv_pairs=4, window=65)
    knobs = exported.info["no_match"]
    low, high = knobs["bias_interval"]
    assert knobs["token"] == NO_MATCH_TOKEN < 8192 // 2  # the reference's values are [c/2, c)
    assert low < knobs["bias"] < high and high / low > 4  # a factor > 2 either side of C
    assert knobs["bias"] == no_match_bias(16, 128)["C"]
    assert exported.info["channels_used"] == 64
    bias = exported.state["backbone.ln_f.bias"]
    codes = balanced_codes(8192, 16)
    assert torch.equal(bias[32:48], knobs["bias"] * torch.from_numpy(codes[NO_MATCH_TOKEN].astype(np.float64)))
    assert int((bias != 0).sum()) == 16
    with pytest.raises(ValueError, match="d_model=48: the lookup needs 4m = 64 channels"):
        export_reference("sliding_window", vocab_size=8192, seq_len=64, num_kv_pairs=4, window=8, d_model=48)


def test_sliding_window_set_is_neither_empty_nor_everything() -> None:
    """The U8 check above is not vacuous at (256, 16, 64): some queries lie inside the window and some outside."""
    exported = export_reference("sliding_window", vocab_size=1024, seq_len=256, num_kv_pairs=16, window=64)
    s = score(exported, 256, 16, random_filler=False, n=64, window=64)
    assert 0 < s.num_in_window < s.num_queries
    assert s.num_recall_set_mismatches == 0 and s.num_correct_unambiguous == s.num_in_window


def test_based_export_is_measured_not_exact() -> None:
    exported = export_reference("based_taylor", vocab_size=8192, seq_len=64, num_kv_pairs=4)
    assert exported.info["exact"] is False and "capacity law" in exported.info["why_not_exact"]
    s = score(exported, 64, 4, random_filler=False, n=64)
    assert 0.8 < s.accuracy_unambiguous < 1.0


def test_exported_config_is_the_reference_fig2_hybrid() -> None:
    exported = export_reference("attention_signcode", vocab_size=8192, seq_len=128, num_kv_pairs=8)
    config = exported.config
    conv, mha = config["sequence_mixer"]["kwargs"]["configs"]
    assert config["sequence_mixer"]["name"] == "zoology.mixers.hybrid.Hybrid"
    assert conv == {
        "name": "zoology.mixers.base_conv.BaseConv",
        "kwargs": {"l_max": 128, "kernel_size": 3, "implicit_long_conv": True},
    }
    assert mha == {"name": "zoology.mixers.attention.MHA", "kwargs": {"dropout": 0.0, "num_heads": 1}}
    assert config["state_mixer"] == {"name": "torch.nn.Identity", "kwargs": {}}
    assert (config["n_layers"], config["max_position_embeddings"], config["vocab_size"]) == (2, 0, 8192)
    assert sorted(exported.state) == sorted(reference_key_map(loaded(exported)))
    assert torch.equal(exported.state["lm_head.weight"], exported.state["backbone.embeddings.word_embeddings.weight"])


@pytest.mark.parametrize("name", sorted(NOT_EXPORTABLE))
def test_unexportable_constructions_name_the_reason(name: str) -> None:
    with pytest.raises(ValueError, match=f"construction='{name}': cannot be exported"):
        export_reference(name, vocab_size=8192, seq_len=64, num_kv_pairs=4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"d_model": 32}, "d_model=32: the lookup needs 3m = 48 channels"),
        ({"seq_len": 63}, "seq_len=63: must be even"),
        ({"num_kv_pairs": 17}, "num_kv_pairs=17: needs 4\\*num_kv_pairs <= seq_len=64"),
        ({"vocab_size": 64}, "vocab_size=64: must be > seq_len=64"),
        ({"window": 8}, "window=8: only the sliding_window construction takes a window"),
    ],
)
def test_bad_sizes_are_rejected_up_front(kwargs: dict, message: str) -> None:
    sizes = {"vocab_size": 8192, "seq_len": 64, "num_kv_pairs": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        export_reference("attention_signcode", **sizes)


def test_sliding_window_needs_a_window() -> None:
    with pytest.raises(ValueError, match="window: the sliding_window export needs window=w"):
        export_reference("sliding_window", vocab_size=8192, seq_len=64, num_kv_pairs=4)
    with pytest.raises(ValueError, match="window=0: must be an int >= 1"):
        export_reference("sliding_window", vocab_size=8192, seq_len=64, num_kv_pairs=4, window=0)


def test_cli_writes_a_checkpoint_that_loads_strictly(tmp_path, capsys) -> None:
    out = tmp_path / "ckpt"
    argv = ["zoology", "--construction", "attention_signcode", "--vocab-size", "8192", "--seq-len", "64"]
    rc = export_main([*argv, "--num-kv-pairs", "8", "--num-examples", "8", "--out", str(out)])
    assert rc == 0
    config = json.loads((out / "config.json").read_text())
    state = torch.load(out / "model.pt")
    assert all(v.dtype == torch.float32 for v in state.values())
    model = from_config(config)
    load_reference_state_dict(model, state)
    report = json.loads((out / "report.json").read_text())
    assert report["width_used"] == 48 and report["d_model"] == 64
    assert [s["accuracy_unambiguous"] for s in report["accuracy"]] == [1.0, 1.0]
    assert report["state"]["numbers_measured"] == 64 * 2 + 2 * 64 * 64  # conv cache d(k-1) + KV cache 2dN
    assert "1.0000 of 64 unambiguous queries" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--construction", "baseconv_data_independent"], "cannot be exported to the reference layout"),
        (["--construction", "attention_signcode", "--d-model", "16"], "d_model=16"),
        (["--construction", "attention_signcode", "--num-examples", "0"], "num_examples=0"),
    ],
)
def test_cli_errors_are_one_line_with_status_2(tmp_path, capsys, extra: list[str], message: str) -> None:
    argv = ["zoology", "--vocab-size", "8192", "--seq-len", "64", "--num-kv-pairs", "4", "--out", str(tmp_path)]
    assert export_main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
