"""benchmarks/causal_conv.py, short_conv.py and scan_rounding.py run on the CPU (small shapes) and write their
figures; selective_scan.py refuses to run without a CUDA GPU (exit 2, saying why); all refuse bad arguments."""

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


def test_head_norm_benchmark_writes_both_paths_their_difference_and_what_served(tmp_path):
    script = _script("head_norm")
    argv = ["--device", "cpu", "--out-dir", str(tmp_path), "--repeats", "2", "--dtype", "float32", "--small"]
    assert script.main(argv) == 0
    report = json.loads((tmp_path / "head_norm.json").read_text())
    assert [(r["family"], r["gated"]) for r in report["rows"]] == [(s[0], s[-1]) for s in script.SMALL_SHAPES]
    table = (tmp_path / "head_norm.md").read_text()
    for r in report["rows"]:  # on CPU tensors without the interpreter the plain rule serves, and says so
        assert r["served"] == "reference" and not any(k.startswith("kernel_") for k in r)
        assert r["output_difference"] == 0 and r["gradient_difference"] == 0
        assert r["eager_forward_backward_ms"] > 0 and r["reference_forward_backward_ms"] > 0
        assert table.count(f"\n| {r['family']} | {r['R']} | {r['B']} | {r['N']} | {r['H']} |") == 1
    assert "kernel" not in table.split("| family |")[1]


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton (its interpreter runs the kernel)")
def test_head_norm_benchmark_times_the_kernel_under_the_interpreter(interpreted, tmp_path):
    interpreted(
        f"""
        import json, pathlib, importlib.util, sys
        spec = importlib.util.spec_from_file_location("head_norm", "benchmarks/head_norm.py")
        script = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(script)
        out = pathlib.Path({str(tmp_path)!r})
        argv = ["--device", "cpu", "--out-dir", str(out), "--repeats", "1", "--dtype", "float32", "--small"]
        assert script.main(argv) == 0
        rows = json.loads((out / "head_norm.json").read_text())["rows"]
        assert [r["served"] for r in rows] == ["kernel", "kernel"]
        from mqarkit.tolerances import tolerance_for
        float32 = tolerance_for("float32")
        bound = float32.atol + float32.rtol  # relative to the largest magnitude: float32 sums either way
        assert all(r["output_difference"] <= bound and r["gradient_difference"] <= bound for r in rows), rows
        assert all(r["kernel_forward_backward_ms"] > 0 for r in rows)
        print("ok")
        """
    )


@pytest.mark.parametrize(
    "name, bad",
    [
        ("causal_conv", ["--repeats", "0"]),
        ("short_conv", ["--repeats", "0", "--small"]),
        ("head_norm", ["--repeats", "0", "--small"]),
        ("selective_scan", ["--repeats", "0"]),
        ("selective_scan", ["--batch", "0"]),
    ],
)
def test_kernel_benchmarks_refuse_a_count_below_one_before_any_work(tmp_path, capsys, name, bad):
    """The shared rule (``mqarkit.gpu.timing.positive_int``): exit 2, the argument named, nothing written."""
    with pytest.raises(SystemExit) as exit_info:
        _script(name).main(["--out-dir", str(tmp_path), *bad])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"argument {bad[0]}: must be >= 1, got 0" in err
    assert not list(tmp_path.iterdir())


def test_short_conv_benchmark_writes_both_paths_their_difference_and_what_served(tmp_path):
    script = _script("short_conv")
    argv = ["--device", "cpu", "--out-dir", str(tmp_path), "--repeats", "2", "--dtype", "float32", "--small"]
    assert script.main(argv) == 0
    report = json.loads((tmp_path / "short_conv.json").read_text())
    assert report["dtype"] == "float32" and report["env"]["device_type"] == "cpu"
    assert [tuple(r[a] for a in "RBNHK") for r in report["rows"]] == list(script.SMALL_SHAPES)
    for r in report["rows"]:
        assert r["served"] == "reference"  # CPU tensors, no interpreter: the plain-torch form, and labelled so
        bound = tolerance_for("float32").atol + tolerance_for("float32").rtol  # relative to the largest magnitude
        assert r["output_difference"] <= bound and r["gradient_difference"] <= bound  # float32: the same sums
        assert all(r[f"{p}_{w}_ms"] > 0 for p in ("eager", "reference") for w in ("forward", "forward_backward"))
        assert r["speedup_forward_backward"] > 0
        assert not any(key.startswith(("kernel_", "recompute_", "dz_written_")) for key in r)  # nothing of a kernel
    table = (tmp_path / "short_conv.md").read_text()
    assert "| difference (out, grad) |" in table and "kernel |" not in table
    for r in report["rows"]:
        assert table.count("\n| " + " | ".join(str(r[a]) for a in "RBNHK") + " | reference |") == 1


@pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="needs triton (its interpreter runs the kernels)"
)
def test_short_conv_benchmark_times_the_kernel_and_both_backwards_under_the_interpreter(interpreted, tmp_path):
    """The measurement and table with the kernels run by Triton's interpreter on CPU tensors (one tiny shape, K = 40:
    a 64-wide head block, whose backward writes dz by default): the kernel served and labelled so, both forced
    backwards timed and equal to the eager gradients, the module constant restored."""
    interpreted(
        f"""
        from pathlib import Path
        import torch
        import mqarkit.gpu.frontier.kernels.short_conv as ks
        assert ks._INTERPRETED
        from tests.frontier.test_kernel_benchmarks import _script

        script, before = _script("short_conv"), ks.RECOMPUTE_HEAD_BLOCK
        row = script.measure((1, 1, 4, 1, 40), torch.float32, torch.device("cpu"), repeats=1)
        assert ks.RECOMPUTE_HEAD_BLOCK == before
        assert row["served"] == "kernel" and row["default_backward"] == "dz_written", row
        for path in ("eager", "kernel", "recompute", "dz_written"):
            assert row[path + "_forward_backward_ms"] > 0, path
        for name in ("output", "gradient", "recompute_gradient", "dz_written_gradient"):
            assert row[name + "_difference"] <= 1e-5, row
        report = {{"env": {{"device": "cpu", "torch": "t", "git_commit": "0" * 40}}, "command": "c", "repeats": 1,
                   "dtype": "float32", "rows": [row]}}
        script.write(report, Path({str(tmp_path)!r}))
        table = (Path({str(tmp_path)!r}) / "short_conv.md").read_text()
        assert "| 1 | 1 | 4 | 1 | 40 | kernel |" in table and " (dz_written) |" in table, table
        print("ok")
        """
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_selective_scan_benchmark_needs_a_gpu(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _script("selective_scan").main(["--out-dir", str(tmp_path)])
    assert exit_info.value.code == 2 and "needs a CUDA GPU" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("bad", ["256x2", "256x2x3", "256x3x8", "x2x8", "256x2x8x1", "256x2x-8"])
def test_selective_scan_benchmark_refuses_a_bad_sequential_launch_before_any_work(tmp_path, capsys, bad):
    with pytest.raises(SystemExit) as exit_info:
        _script("selective_scan").main(["--out-dir", str(tmp_path), "--sequential-launches", "256x1x8", bad])
    assert exit_info.value.code == 2 and "--sequential-launches" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_selective_scan_benchmark_refuses_an_unknown_path_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _script("selective_scan").main(["--out-dir", str(tmp_path), "--paths", "skipping", "sequentail"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "argument --paths: invalid choice: 'sequentail'" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("bad", ["1024", "1000x4", "1024x3", "x4", "1024x-4"])
def test_selective_scan_benchmark_refuses_a_bad_launch_before_any_work(tmp_path, capsys, bad):
    with pytest.raises(SystemExit) as exit_info:
        _script("selective_scan").main(["--out-dir", str(tmp_path), "--backward-launches", "512x4", bad])
    assert exit_info.value.code == 2 and "--backward-launches" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="needs triton (its interpreter runs the kernels)"
)
def test_selective_scan_benchmark_times_the_four_paths_under_the_interpreter(interpreted, tmp_path):
    """The benchmark's measurement and table, its kernels run by Triton's interpreter on CPU tensors (tiny shapes):
    the four paths timed, the skipping path equal to the fused one over every state index and the sequential one
    within float32 of it, the table's row; a selection of paths times only those."""
    interpreted(
        f"""
        import json
        from pathlib import Path
        import torch
        import mqarkit.gpu.frontier.kernels.selective_scan as ks
        assert ks._INTERPRETED
        from tests.frontier.test_kernel_benchmarks import _script

        script = _script("selective_scan")
        # one run of each d_state, a quarter of the harness's 8, 16, 24: the interpreter runs the log-depth kernels'
        # programs, one per state index, one after another (about 13 s a forward+backward at n = 24)
        script.RUNS, script.STATE, script.STACK_STATES = 3, 6, (2, 4, 6)
        row = script.measure(
            1, 5, 2, torch.device("cpu"), repeats=1, launches=[ks.Launch(16, 1)],
            sequential_launches=[(ks.Launch(16, 1), 2)],
        )
        for path in ("fused", "skipping", "sequential", "torch"):
            assert row[path + "_forward_ms"] > 0 and row[path + "_forward_backward_ms"] > 0, path
        assert row["skipping_difference"] <= 1e-6 and row["relative_difference"] <= 1e-5, row
        assert row["sequential_difference"] <= 1e-5, row
        assert row["skipping_gain"] > 0 and row["speedup"] > 0 and row["sequential_gain"] > 0
        some = script.measure(1, 5, 2, torch.device("cpu"), repeats=1, timed_paths=("skipping", "sequential"))
        assert "torch_forward_ms" not in some and "fused_forward_ms" not in some and "speedup" not in some
        assert some["relative_difference"] is None and some["sequential_difference"] <= 1e-5, some
        assert some["sequential_gain"] > 0
        (launch,) = row["backward_launches"].values()  # one channel per program: the sums split otherwise
        assert launch["forward_backward_ms"] > 0 and launch["gradient_difference"] <= 1e-6, launch
        assert list(row["sequential_launches"]) == ["16x1x2"]  # 8 channels x 2 states a block, not 32 x 8
        (launch,) = row["sequential_launches"].values()
        assert launch["forward_backward_ms"] > 0 and launch["gradient_difference"] <= 1e-6, launch
        report = {{"env": {{"device": "cpu", "torch": "t", "triton": "t", "git_commit": "0" * 40}}, "command": "c",
                   "repeats": 1, "batch": 1, "backward_launches": ["16x1"], "rows": [row],
                   "default_backward_launch": "64x2",  # the default when measured: the table names it, not today's
                   "sequential_launches": ["16x1x2"], "default_sequential_launch": "256x2x8"}}
        script.write(report, Path({str(tmp_path)!r}))
        table = (Path({str(tmp_path)!r}) / "selective_scan.md").read_text()
        assert "| skipping fwd+bwd | gain | skipping difference | sequential fwd |" in table, table
        assert "| 5 | 2 (4) |" in table
        assert "| N | d (d_i) | 64x2 (default) | 16x1 |" in table and "the default is 64x2" in table
        assert "| N | d (d_i) | 256x2x8 (default) | 16x1x2 |" in table and "the sequential path's" in table
        print("ok")
        """
    )


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
