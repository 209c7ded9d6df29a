"""benchmarks/causal_conv.py runs on the CPU (small shapes) and writes its comparison; benchmarks/selective_scan.py
refuses to run without a CUDA GPU (exit 2, saying why); both refuse bad arguments."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_causal_conv_benchmark_writes_both_forms_and_their_difference(tmp_path, monkeypatch):
    script = _script("causal_conv")
    monkeypatch.setattr(script, "RUNS", 2)
    monkeypatch.setattr(script, "BATCH", 3)
    monkeypatch.setattr(script, "LENGTHS", (8, 16))
    monkeypatch.setattr(script, "WIDTHS", (4,))
    assert script.main(["--device", "cpu", "--out-dir", str(tmp_path), "--repeats", "2"]) == 0
    report = json.loads((tmp_path / "causal_conv.json").read_text())
    assert [(r["N"], r["d"]) for r in report["rows"]] == [(8, 4), (16, 4)]
    for r in report["rows"]:
        assert r["toeplitz_relative_difference"] < 1e-5  # float32: both forms compute the same sums
        assert all(r[f"{p}_{w}_ms"] > 0 for p in ("fft", "toeplitz") for w in ("forward", "forward_backward"))
    table = (tmp_path / "causal_conv.md").read_text()
    assert table.count("\n| 8 | 4 |") == 1 and table.count("\n| 16 | 4 |") == 1


def test_causal_conv_benchmark_refuses_zero_repeats(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        _script("causal_conv").main(["--device", "cpu", "--out-dir", str(tmp_path), "--repeats", "0"])
    assert exit_info.value.code == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_selective_scan_benchmark_needs_a_gpu(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _script("selective_scan").main(["--out-dir", str(tmp_path)])
    assert exit_info.value.code == 2 and "needs a CUDA GPU" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
