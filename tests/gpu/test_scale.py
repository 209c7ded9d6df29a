"""The scale-check runner end to end on the CPU at small sizes, and on the GPU at full size (marked gpu)."""

from __future__ import annotations

import json

import pytest
import torch

from mqarkit.gpu.scale import PRESETS, dense_baseconv_bytes, main


def test_cpu_preset_solves_every_case(tmp_path) -> None:
    rows = main(["--preset", "cpu", "--device", "cpu", "--dtypes", "float32", "--repeats", "1", "--out", str(tmp_path)])
    assert len(rows) == len(PRESETS["cpu"])
    for row in rows:
        assert "error" not in row, row
        assert row["accuracy"] == 1.0, row
        assert row["tokens_per_s"] > 0
    saved = json.loads((tmp_path / "scale_checks.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(rows))
    assert "| attention_signcode | 512 |" in (tmp_path / "scale_checks.md").read_text()


def test_bad_dtype_is_refused() -> None:
    with pytest.raises(ValueError, match="dtypes"):
        main(["--preset", "cpu", "--device", "cpu", "--dtypes", "int8"])


def test_dense_baseconv_at_4096_is_out_of_reach() -> None:
    """The stated reason the BaseConv constructions run below N = 4,096: dense W alone exceeds 100 GB."""
    assert dense_baseconv_bytes(4096, 4097) > 100 * 2**30
    assert dense_baseconv_bytes(512, 513) < 2 * 2**30


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_preset_attention_at_65536() -> None:
    rows = main(["--preset", "gpu", "--only", "attention_signcode", "--dtypes", "float32", "--repeats", "1"])
    assert torch.cuda.is_available()
    assert rows[0]["seq_len"] == 65_536 and rows[0]["accuracy"] == 1.0
