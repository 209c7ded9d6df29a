"""GroupedLookup (torch, lag groups as a batch axis, per-example lags) == the dense IR model == the oracle (CPU)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mqarkit.constructions import build
from mqarkit.constructions._baseconv_lookup_groups import group_lookup_weights, grouped_output
from mqarkit.constructions._baseconv_onehot_lookup import onehot_lookup_weights
from mqarkit.constructions._baseconv_stack import as_ir_model, run_ir_model
from mqarkit.gpu.grouped_lookup import GroupedLookup, lag_table, main
from mqarkit.oracle import score
from mqarkit.task import MQARSpec, generate
from mqarkit.tolerances import assert_close

NAME = "baseconv_input_dependent"
SIZES = [(8, 2, 10), (12, 3, 13), (16, 4, 20), (24, 6, 64)]  # (N, D, c)


def _lags(con, inputs: np.ndarray) -> np.ndarray:
    return np.array([con.lags_for(x) for x in inputs], dtype=np.int64)


@pytest.mark.parametrize("n, d_pairs, c", SIZES)
@pytest.mark.parametrize("rule", ["exact", "autocorrelation"])
@pytest.mark.parametrize("group_chunk", [None, 1, 3])
def test_equals_ir_and_oracle_float64(n: int, d_pairs: int, c: int, rule: str, group_chunk: int | None) -> None:
    con = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d_pairs, lags=rule)
    rng = np.random.default_rng(7 * n + c)
    for filler in ("clean", "zero"):
        batch = generate(MQARSpec(vocab_size=c, seq_len=n, num_kv_pairs=d_pairs, filler=filler), 4, rng)
        lags = _lags(con, batch.inputs)  # (4, t), the construction's own per-example lags
        assert np.array_equal(lags, lag_table(batch.inputs, num_kv_pairs=d_pairs, vocab_size=c, rule=rule, t=con.t))
        model = GroupedLookup(
            group_lookup_weights(n, d_pairs, c, lags[0]), group_chunk=group_chunk, dtype=torch.float64
        )
        tokens = torch.from_numpy(batch.inputs)
        out = model(tokens, torch.from_numpy(lags)).numpy()
        ir = np.asarray(con.output(batch.inputs, backend="float64"), dtype=np.float64)
        assert np.array_equal(out, ir)  # small integers: exact in float64
        reference = model.forward_code(torch.eye(c, dtype=torch.float64)[tokens], lags).numpy()
        assert np.array_equal(reference, ir)
        pred = model.predict(tokens, lags).numpy()
        assert np.array_equal(pred, con.predict(batch.inputs))
        if rule == "exact":
            assert score(pred, batch).accuracy == 1.0


def test_autocorrelation_rule_can_miss() -> None:
    """Erratum 7: the top-t autocorrelation lags need not cover the queries; the model then reads 0 there, and the
    grouped model reproduces that (equal to the IR), rather than silently scoring 100%."""
    n, d_pairs, c = 64, 4, 65
    con = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d_pairs, lags="autocorrelation")
    batch = generate(
        MQARSpec(vocab_size=c, seq_len=n, num_kv_pairs=d_pairs, filler="zero"), 4, np.random.default_rng(0)
    )
    lags = _lags(con, batch.inputs)
    model = GroupedLookup(group_lookup_weights(n, d_pairs, c, lags[0]), dtype=torch.float64)
    pred = model.predict(torch.from_numpy(batch.inputs), lags).numpy()
    assert np.array_equal(pred, con.predict(batch.inputs))
    assert score(pred, batch).accuracy < 1.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_exact_on_codebook_inputs(dtype: torch.dtype) -> None:
    """Every value is 0/1 or a count <= t, so float32 and bfloat16 reproduce float64 exactly."""
    n, d_pairs, c = 128, 16, 200
    con_lags = dict(num_kv_pairs=d_pairs, vocab_size=c, rule="exact", t=d_pairs)
    batch = generate(
        MQARSpec(vocab_size=c, seq_len=n, num_kv_pairs=d_pairs, filler="random"), 3, np.random.default_rng(1)
    )
    lags = lag_table(batch.inputs, **con_lags)
    weights = group_lookup_weights(n, d_pairs, c, lags[0])
    tokens = torch.from_numpy(batch.inputs)
    ref = GroupedLookup(weights, dtype=torch.float64)(tokens, lags)
    low = GroupedLookup(weights, group_chunk=5, dtype=dtype)(tokens, lags)
    assert low.dtype == dtype
    assert torch.equal(low.double(), ref)
    assert score(GroupedLookup(weights, dtype=dtype).predict(tokens, lags).numpy(), batch).accuracy == 1.0


def test_reference_on_arbitrary_codes_equals_ir_and_numpy() -> None:
    """Off the codebook the dense-channel reference is still the dense model's polynomial, per example."""
    n, d_pairs, c = 12, 3, 7
    lags = np.array([[4, 2, 9], [2, 6, 10]])
    code = np.random.default_rng(2).standard_normal((2, n, c))
    model = GroupedLookup(group_lookup_weights(n, d_pairs, c, lags[0]), group_chunk=2, dtype=torch.float64)
    out = model.forward_code(torch.from_numpy(code), lags).numpy()
    for e in range(2):
        ir = run_ir_model(as_ir_model(onehot_lookup_weights(n, d_pairs, c, lags[e])), code[e], "float64")
        assert_close(out[e], ir, dtype="float64")
    assert_close(out, grouped_output(group_lookup_weights(n, d_pairs, c, lags[0]), code, lags), dtype="float64")


def test_bad_input_raises() -> None:
    weights = group_lookup_weights(8, 2, 10, [2, 4])
    with pytest.raises(ValueError, match="group_chunk"):
        GroupedLookup(weights, group_chunk=0)
    with pytest.raises(ValueError, match="dtype"):
        GroupedLookup(weights, dtype=torch.int64)
    with pytest.raises(TypeError, match="weights"):
        GroupedLookup(onehot_lookup_weights(8, 2, 10, [2, 4]))
    layer_a = dataclasses.replace(weights.layers[0], ones=np.ones((2, 2)))
    with pytest.raises(ValueError, match="weights"):
        GroupedLookup(dataclasses.replace(weights, layers=(layer_a, weights.layers[1])))
    model = GroupedLookup(weights)
    tokens = torch.zeros(1, 8, dtype=torch.int64)
    with pytest.raises(ValueError, match="tokens"):
        model(torch.zeros(2, 6, dtype=torch.int64), [[2, 4], [2, 4]])
    with pytest.raises(ValueError, match="tokens"):
        model(torch.full((1, 8), 10, dtype=torch.int64), [[2, 4]])
    with pytest.raises(TypeError, match="tokens"):
        model(np.zeros((1, 8), dtype=np.int64), [[2, 4]])
    with pytest.raises(ValueError, match="lags"):
        model(tokens, [[2, 4, 6]])
    with pytest.raises(ValueError, match="lags"):
        model(tokens, [[2, 8]])
    with pytest.raises(ValueError, match="lags"):
        model(tokens, [[4, 4]])
    with pytest.raises(ValueError, match="t="):
        lag_table(np.zeros((1, 8), dtype=np.int64), num_kv_pairs=2, vocab_size=10, rule="exact", t=1)


def test_scale_script_on_cpu(tmp_path) -> None:
    args = ["--seq-len", "64", "--num-kv-pairs", "2,8", "--batch", "2", "--repeats", "1", "--rules", "exact"]
    rows = main([*args, "--out", str(tmp_path)])
    assert len(rows) == 4  # 2 D x (float64, float32)
    assert all(r["accuracy"] == 1.0 and r["out_exact_at_queries"] and r["example0_equals_direct"] for r in rows)
    assert all(r["max_abs_diff_vs_first"] == 0.0 and r["width_d"] == 2 * r["t"] * 65 for r in rows)
    assert (tmp_path / "scale_checks_inputdep4096.json").exists()
    assert "| 64 | 65 | 8 | exact |" in (tmp_path / "scale_checks_inputdep4096.md").read_text()
