"""benchmarks/causal_conv.py and scan_rounding.py run on the CPU (small shapes) and write their figures;
selective_scan.py refuses to run without a CUDA GPU (exit 2, saying why); all refuse bad arguments."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from mqarkit.tolerances import tolerance_for

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


def test_scan_rounding_benchmark_writes_each_forms_distance_from_float64(tmp_path, monkeypatch):
    script = _script("scan_rounding")
    monkeypatch.setattr(script, "SHAPES", ((1, 2, 1, 3, 2), (2, 1, 37, 4, 3)))
    assert script.main(["--out-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "scan_rounding.json").read_text())
    float32 = tolerance_for("float32")
    bound = float32.atol + float32.rtol  # the float32 row, relative to the scale: both forms are float32 sums
    assert [r["shape"] for r in report["rows"]] == [[1, 2, 1, 3, 2], [2, 1, 37, 4, 3]]
    for r in report["rows"]:
        assert set(r) == {"shape", "chunked", "log_depth"}  # no fused kernels on the CPU
        for form in ("chunked", "log_depth"):
            assert set(r[form]) == set(script.NAMES)
            assert all(0 <= e["scaled"] <= bound and 0 <= e["rms"] <= bound for e in r[form].values())
    assert (tmp_path / "scan_rounding.md").read_text().count("| (2, 1, 37, 4, 3) |") == len(script.NAMES)


def test_scan_rounding_benchmark_refuses_bad_shape_counts(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        _script("scan_rounding").main(["--out-dir", str(tmp_path), "--shapes", "0"])
    assert exit_info.value.code == 2 and not list(tmp_path.iterdir())
