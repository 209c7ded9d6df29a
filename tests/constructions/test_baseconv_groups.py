"""The grouped U4 weights: densify == the dense construction (exact), grouped NumPy evaluation == the IR, gates."""

from __future__ import annotations

import numpy as np
import pytest
from weight_asserts import assert_same

from mqarkit.constructions import baseconv_data_independent as di
from mqarkit.constructions import build
from mqarkit.constructions._baseconv_groups import densify, group_gates, group_weights, grouped_output
from mqarkit.constructions._baseconv_layout import all_lags, lag_gate
from mqarkit.task import MQARSpec, generate
from mqarkit.tolerances import assert_close

NAME = "baseconv_data_independent"
SIZES = [(4, 1, 5), (6, 1, 8), (8, 2, 10), (10, 2, 17), (12, 3, 13), (16, 4, 33), (20, 5, 64), (8, 2, 256)]  # (N, D, c)


@pytest.mark.parametrize("n, d_pairs, c", SIZES)
def test_densify_equals_dense_construction(n: int, d_pairs: int, c: int) -> None:
    grouped = group_weights(n, d_pairs, c)
    dense = di.construction_weights(n, d_pairs, c, "sign")
    rebuilt = densify(grouped)
    assert grouped.width == dense.width
    assert_same(rebuilt.embed, dense.embed, "embed")
    assert_same(rebuilt.unembed, dense.unembed, "unembed")
    assert len(rebuilt.layers) == len(dense.layers)
    for k, (mine, theirs) in enumerate(zip(rebuilt.layers, dense.layers, strict=True)):
        for field in ("weight", "filters", "bias_linear", "bias_conv"):
            assert_same(getattr(mine, field), getattr(theirs, field), f"layer {k} {field}")
        assert mine.cyclic == theirs.cyclic


@pytest.mark.parametrize("n, d_pairs, c", SIZES)
def test_grouped_output_equals_ir(n: int, d_pairs: int, c: int) -> None:
    grouped = group_weights(n, d_pairs, c)
    con = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d_pairs)
    rng = np.random.default_rng(n * 1000 + c)
    for filler in ("clean", "random", "zero"):
        batch = generate(MQARSpec(vocab_size=c, seq_len=n, num_kv_pairs=d_pairs, filler=filler), 3, rng)
        code = di.sign_codebook(c)[batch.inputs]  # (3, N, m)
        mine = grouped_output(grouped, code)
        ir = np.asarray(con.output(batch.inputs, backend="float64"), dtype=np.float64)
        direct = np.stack([di.direct_output(x, d_pairs, c) for x in batch.inputs]).astype(np.float64)
        assert np.array_equal(mine, ir)  # every value is a small integer: float64 holds it exactly
        assert np.array_equal(mine, direct)
        assert np.array_equal(grouped_output(grouped, code[0]), mine[0])


def test_grouped_output_arbitrary_codes_equals_ir() -> None:
    """Off the codebook (random reals) the grouped evaluation still equals the IR's: the same polynomial."""
    n, d_pairs, c = 12, 2, 13
    grouped = group_weights(n, d_pairs, c)
    model = di.as_ir_model(di.construction_weights(n, d_pairs, c, "sign"))
    code = np.random.default_rng(0).standard_normal((2, n, grouped.code_width))
    assert_close(grouped_output(grouped, code), di.run_ir_model(model, code, "float64"), dtype="float64")


@pytest.mark.parametrize("n, d_pairs", [(4, 1), (16, 3), (64, 16), (4096, 1024)])
def test_group_gates_equal_lag_gate(n: int, d_pairs: int) -> None:
    lags = np.asarray(all_lags(n))
    gates = group_gates(n, d_pairs, lags)
    assert gates.shape == (len(lags), n)
    picks = lags if n <= 64 else lags[[0, 1, d_pairs - 1, d_pairs, len(lags) // 2, len(lags) - 1]]
    for s in picks:
        j = int(np.flatnonzero(lags == s)[0])
        assert np.array_equal(gates[j], lag_gate(n, d_pairs, int(s)))
    # every (key slot, query slot) pair is gated on in exactly one group: D (N - 2D) / 2 ones in all
    assert gates.sum() == d_pairs * (n - 2 * d_pairs) // 2


def test_shapes_and_storage_at_n4096() -> None:
    grouped = group_weights(4096, 64, 4097)
    m, g = 13, 26
    assert (grouped.code_width, grouped.group_width, grouped.groups, grouped.width) == (m, g, 2047, 53_222)
    assert len(grouped.tree) == 4
    assert all(layer.weight.shape == (g, g) for layer in grouped.tree)
    # O(g^2 L + G) numbers, against d^2 = 2.8e9 per dense W
    assert grouped.stored_numbers() == 2047 + 2 * m * g + g * g + 3 * g + 4 * (g * g + 3 * g)


def test_bad_sizes_raise() -> None:
    with pytest.raises(ValueError, match="seq_len"):
        group_weights(7, 1, 9)
    with pytest.raises(ValueError, match="lags"):
        group_gates(8, 1, np.array([0, 2]))
    grouped = group_weights(8, 2, 10)
    with pytest.raises(ValueError, match="code"):
        grouped_output(grouped, np.zeros((8, 3)))
