"""benchmarks/u2_margin_gpu.py (U2's adversarial margin in low precision) runs on the CPU and writes its results."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from mqarkit.tolerances import assert_close

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "u2_margin_gpu.py"


def _script(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # the script imports benchmarks/_machine.py
    spec = importlib.util.spec_from_file_location("u2_margin_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_run_writes_results_and_float32_matches_float64(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = _script(monkeypatch)
    assert script.main(["--device", "cpu", "--dtype", "float32", "--out", str(tmp_path), "--max-seq-len", "64"]) == 0
    result = json.loads((tmp_path / "u2_margin_cpu_float32.json").read_text())
    assert [(r["c"], r["N"]) for r in result["rows"]] == [(32, 16), (32, 16), (128, 64), (128, 64)]
    for r in result["rows"]:
        assert_close(r["float64_x_m"], r["formula_x_m"], dtype="float32")  # rounded to 6 digits in the file
        assert_close(r["margin_x_m"], r["float64_x_m"], dtype="float32")
        assert r["clears_proven"]
    assert "| 128 | 64 | 7 | strict |" in (tmp_path / "u2_margin_cpu_float32.md").read_text()


def test_bad_arguments_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = _script(monkeypatch)
    assert script.main(["--device", "cpu", "--out", str(tmp_path), "--max-seq-len", "8"]) == 2
