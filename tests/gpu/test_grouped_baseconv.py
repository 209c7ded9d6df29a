"""GroupedBaseConv (torch, groups as a batch dimension) == the dense IR model (float64) == the oracle, on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mqarkit.constructions import baseconv_data_independent as di
from mqarkit.constructions import build
from mqarkit.constructions._baseconv_groups import group_gates, group_weights, grouped_output
from mqarkit.gpu.grouped_baseconv import GroupedBaseConv, lag_gates, main
from mqarkit.oracle import score
from mqarkit.task import MQARSpec, generate
from mqarkit.tolerances import assert_close

NAME = "baseconv_data_independent"
SIZES = [(4, 1, 5), (8, 2, 10), (12, 3, 13), (16, 4, 33), (24, 6, 64), (8, 2, 256)]  # (N, D, c)


@pytest.mark.parametrize("n, d_pairs, c", SIZES)
@pytest.mark.parametrize("group_chunk", [None, 1, 2])
def test_equals_ir_and_oracle_float64(n: int, d_pairs: int, c: int, group_chunk: int | None) -> None:
    con = build(NAME, vocab_size=c, seq_len=n, num_kv_pairs=d_pairs)
    model = GroupedBaseConv(group_weights(n, d_pairs, c), group_chunk=group_chunk, dtype=torch.float64)
    rng = np.random.default_rng(7 * n + c)
    for filler in ("clean", "random"):
        batch = generate(MQARSpec(vocab_size=c, seq_len=n, num_kv_pairs=d_pairs, filler=filler), 4, rng)
        out = model(torch.from_numpy(batch.inputs)).numpy()
        ir = np.asarray(con.output(batch.inputs, backend="float64"), dtype=np.float64)
        assert np.array_equal(out, ir)  # small integers: exact in float64
        pred = model.predict(torch.from_numpy(batch.inputs)).numpy()
        assert np.array_equal(pred, con.predict(batch.inputs))
        if filler == "clean":
            assert score(pred, batch).accuracy == 1.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_exact_on_codebook_inputs(dtype: torch.dtype) -> None:
    """Every intermediate is a small integer or 0/1 factor, so float32 and bfloat16 reproduce float64 exactly."""
    n, d_pairs, c = 64, 16, 200
    weights = group_weights(n, d_pairs, c)
    batch = generate(
        MQARSpec(vocab_size=c, seq_len=n, num_kv_pairs=d_pairs, filler="clean"), 3, np.random.default_rng(1)
    )
    tokens = torch.from_numpy(batch.inputs)
    ref = GroupedBaseConv(weights, dtype=torch.float64)(tokens)
    low = GroupedBaseConv(weights, group_chunk=5, dtype=dtype)(tokens)
    assert low.dtype == dtype
    assert torch.equal(low.double(), ref)
    assert score(GroupedBaseConv(weights, dtype=dtype).predict(tokens).numpy(), batch).accuracy == 1.0


def test_arbitrary_codes_equal_numpy_grouped_and_ir() -> None:
    """Off the codebook (random reals) it is still the same polynomial as the IR model and the NumPy evaluation."""
    n, d_pairs, c = 12, 2, 13
    weights = group_weights(n, d_pairs, c)
    code = np.random.default_rng(2).standard_normal((2, n, weights.code_width))
    out = GroupedBaseConv(weights, group_chunk=2, dtype=torch.float64).forward_code(torch.from_numpy(code)).numpy()
    ir = di.run_ir_model(di.as_ir_model(di.construction_weights(n, d_pairs, c, "sign")), code, "float64")
    assert_close(out, ir, dtype="float64")
    assert_close(out, grouped_output(weights, code), dtype="float64")


@pytest.mark.parametrize("n, d_pairs", [(8, 1), (64, 16), (4096, 1024)])
def test_lag_gates_equal_numpy(n: int, d_pairs: int) -> None:
    lags = group_weights(n, d_pairs, n + 1).lags
    gates = lag_gates(n, d_pairs, torch.from_numpy(lags), torch.float32)
    assert np.array_equal(gates.numpy(), group_gates(n, d_pairs, lags).astype(np.float32))


def test_bad_input_raises() -> None:
    weights = group_weights(8, 2, 10)
    with pytest.raises(ValueError, match="group_chunk"):
        GroupedBaseConv(weights, group_chunk=0)
    with pytest.raises(ValueError, match="dtype"):
        GroupedBaseConv(weights, dtype=torch.int64)
    with pytest.raises(TypeError, match="weights"):
        GroupedBaseConv(di.construction_weights(8, 2, 10, "sign"))
    model = GroupedBaseConv(weights)
    with pytest.raises(ValueError, match="tokens"):
        model(torch.zeros(2, 6, dtype=torch.int64))
    with pytest.raises(ValueError, match="tokens"):
        model(torch.full((1, 8), 10, dtype=torch.int64))
    with pytest.raises(TypeError, match="tokens"):
        model(np.zeros((1, 8), dtype=np.int64))


def test_scale_script_on_cpu(tmp_path) -> None:
    rows = main(["--seq-len", "32", "--num-kv-pairs", "2,8", "--batch", "2", "--repeats", "1", "--out", str(tmp_path)])
    assert len(rows) == 4  # 2 D x (float64, float32)
    assert all(r["accuracy"] == 1.0 and r["out_exact_at_queries"] and r["max_abs_diff_vs_first"] == 0.0 for r in rows)
    assert (tmp_path / "scale_checks_baseconv4096.json").exists()
    assert "| 32 | 33 | 8 |" in (tmp_path / "scale_checks_baseconv4096.md").read_text()
