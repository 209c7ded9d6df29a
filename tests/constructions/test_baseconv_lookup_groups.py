"""The grouped U3 weights: densify == onehot_lookup_weights (exact), grouped NumPy evaluation == the IR per example."""

from __future__ import annotations

import numpy as np
import pytest
from weight_asserts import assert_same

from mqarkit.constructions import build
from mqarkit.constructions._baseconv_lookup_groups import (
    block_matrix,
    densify,
    group_lookup_weights,
    grouped_output,
)
from mqarkit.constructions._baseconv_onehot_lookup import (
    onehot_lookup_direct,
    onehot_lookup_parameters,
    onehot_lookup_weights,
)
from mqarkit.task import MQARSpec, generate
from mqarkit.tolerances import assert_close

NAME = "baseconv_input_dependent"
# (N, D, c, lags): lags in any order, odd and even, gated on and off
WEIGHT_CASES = [
    (4, 1, 5, [2]),
    (8, 2, 10, [2, 4]),
    (12, 3, 13, [6, 2, 4, 10]),
    (16, 4, 33, [3, 8, 1]),
    (20, 5, 21, [18, 2, 7, 12, 4, 6]),
]
SIZES = [(8, 2, 10), (12, 3, 13), (16, 4, 20), (20, 5, 24)]  # (N, D, c)


@pytest.mark.parametrize("n, d_pairs, c, lags", WEIGHT_CASES)
def test_densify_equals_dense_construction(n: int, d_pairs: int, c: int, lags: list[int]) -> None:
    grouped = group_lookup_weights(n, d_pairs, c, lags)
    dense = onehot_lookup_weights(n, d_pairs, c, lags)
    rebuilt = densify(grouped)
    assert grouped.width == dense.width == 2 * len(lags) * c
    assert_same(rebuilt.embed, dense.embed, "embed")
    assert_same(rebuilt.unembed, dense.unembed, "unembed")
    assert len(rebuilt.layers) == len(dense.layers) == 2
    for k, (mine, theirs) in enumerate(zip(rebuilt.layers, dense.layers, strict=True)):
        for field in ("weight", "filters", "bias_linear", "bias_conv"):
            assert_same(getattr(mine, field), getattr(theirs, field), f"layer {k} {field}")
        assert mine.cyclic == theirs.cyclic


def test_block_matrix_is_identity_and_ones() -> None:
    got = block_matrix(np.array([[2.0, 0.0], [0.0, 0.0]]), np.array([[0.0, 3.0], [0.0, 0.0]]), 3)
    want = np.zeros((6, 6))
    want[:3, :3] = 2 * np.eye(3)
    want[:3, 3:] = 3.0
    assert np.array_equal(got, want)


@pytest.mark.parametrize("n, d_pairs, c", SIZES)
@pytest.mark.parametrize("rule", ["exact", "autocorrelation"])
def test_grouped_output_equals_ir_per_example(n: int, d_pairs: int, c: int, rule: str) -> None:
    con = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d_pairs, lags=rule)
    rng = np.random.default_rng(n * 100 + c)
    for filler in ("clean", "zero", "random"):
        batch = generate(MQARSpec(vocab_size=c, seq_len=n, num_kv_pairs=d_pairs, filler=filler), 3, rng)
        try:
            lags = np.array([con.lags_for(x) for x in batch.inputs])  # (3, t): each example its own
        except ValueError:  # random filler under "exact": an input may need more than t lags (documented)
            assert filler == "random" and rule == "exact"
            continue
        grouped = group_lookup_weights(n, d_pairs, c, lags[0])
        code = np.eye(c)[batch.inputs]  # (3, N, c)
        mine = grouped_output(grouped, code, lags)
        ir = np.asarray(con.output(batch.inputs, backend="float64"), dtype=np.float64)
        assert np.array_equal(mine, ir)  # small integers: exact in float64
        direct = np.stack([onehot_lookup_direct(x, d_pairs, c, s) for x, s in zip(batch.inputs, lags)])
        assert np.array_equal(mine, direct.astype(np.float64))
        for e in range(3):  # one example alone, with its lags as the weights' own
            alone = grouped_output(group_lookup_weights(n, d_pairs, c, lags[e]), code[e])
            assert np.array_equal(alone, mine[e])


def test_exact_rule_solves_clean_instances() -> None:
    n, d_pairs, c = 24, 6, 30
    con = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d_pairs)
    batch = generate(
        MQARSpec(vocab_size=c, seq_len=n, num_kv_pairs=d_pairs, filler="clean"), 4, np.random.default_rng(3)
    )
    lags = np.array([con.lags_for(x) for x in batch.inputs])
    out = grouped_output(group_lookup_weights(n, d_pairs, c, lags[0]), np.eye(c)[batch.inputs], lags)
    assert np.array_equal(out.argmax(axis=-1), con.predict(batch.inputs))


def test_arbitrary_codes_equal_ir() -> None:
    """Off the codebook (random reals) the grouped evaluation is still the dense model's polynomial."""
    from mqarkit.constructions._baseconv_stack import as_ir_model, run_ir_model

    n, d_pairs, c, lags = 12, 3, 7, [4, 2, 9]
    code = np.random.default_rng(0).standard_normal((2, n, c))
    ir = run_ir_model(as_ir_model(onehot_lookup_weights(n, d_pairs, c, lags)), code, "float64")
    assert_close(grouped_output(group_lookup_weights(n, d_pairs, c, lags), code), ir, dtype="float64")


def test_storage_at_n4096() -> None:
    grouped = group_lookup_weights(4096, 64, 4097, list(range(2, 130, 2)))
    assert (grouped.groups, grouped.group_width, grouped.width) == (64, 8194, 524_416)
    # lags + embed/unembed + per layer (two 2x2, three 2-vectors): against 2cd + 2d^2 + 2Nd + d dense entries
    assert grouped.stored_numbers() == 64 + 2 + 2 + 2 * (4 + 4 + 2 + 2 + 2)
    assert onehot_lookup_parameters(4096, 4097, 64) > 5 * 10**11


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="lags"):
        group_lookup_weights(8, 2, 10, [2, 2])
    with pytest.raises(ValueError, match="lags"):
        group_lookup_weights(8, 2, 10, [8])
    with pytest.raises(ValueError, match="seq_len"):
        group_lookup_weights(0, 2, 10, [2])
    grouped = group_lookup_weights(8, 2, 10, [2, 4])
    with pytest.raises(ValueError, match="code"):
        grouped_output(grouped, np.zeros((8, 3)))
    with pytest.raises(ValueError, match="lags"):
        grouped_output(grouped, np.zeros((2, 8, 10)), np.array([[2, 4]]))
    with pytest.raises(ValueError, match="lags"):
        grouped_output(grouped, np.zeros((1, 8, 10)), np.array([[2, 2]]))
