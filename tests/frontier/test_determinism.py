"""The frontier harness's deterministic mode (CPU): what it sets and restores, the records' field, two runs giving the
same records, refused inputs, and ``benchmarks/determinism.py`` end to end at a tiny size."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from mqarkit.gpu.frontier import determinism, get_preset, read_records, run_multiprocess, run_sweeps
from mqarkit.gpu.frontier.cli import main as frontier_main
from mqarkit.gpu.frontier.determinism import CUBLAS_VARIABLE, ENVIRONMENT, deterministic_enabled, deterministic_mode

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "determinism.py"
OUTCOME = ("status", "accuracy", "overall_accuracy", "history", "loss_history", "epochs_trained", "state_numbers")


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """None of the mode's variables set (restored after the test, with whatever the mode set)."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _sweeps():
    return get_preset("tiny", epochs=2, families=("attention", "based"), example_scale=0.25)


def _outcomes(path: Path) -> dict[str, dict]:
    return {r["run_id"]: {k: r[k] for k in OUTCOME} for r in read_records(path)}


def test_mode_sets_the_flags_and_restores_them(clean_environment: pytest.MonkeyPatch) -> None:
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic)
    assert not deterministic_enabled()
    with deterministic_mode(True):
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert {name: determinism.os.environ[name] for name in ENVIRONMENT} == ENVIRONMENT
        assert determinism.os.environ[CUBLAS_VARIABLE] == ":4096:8"
        assert deterministic_enabled()
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic) == before
    assert not deterministic_enabled()
    assert determinism.os.environ[CUBLAS_VARIABLE] == ":4096:8"  # stays: cuBLAS has read it


def test_mode_off_changes_nothing(clean_environment: pytest.MonkeyPatch) -> None:
    with deterministic_mode(False):
        assert not torch.are_deterministic_algorithms_enabled()
        assert CUBLAS_VARIABLE not in determinism.os.environ
        assert not deterministic_enabled()


def test_mode_keeps_a_reproducible_cublas_value_the_user_set(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv(CUBLAS_VARIABLE, ":16:8")
    with deterministic_mode(True):
        assert determinism.os.environ[CUBLAS_VARIABLE] == ":16:8" and deterministic_enabled()


def test_warn_only_is_not_deterministic_mode(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv(CUBLAS_VARIABLE, ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        assert not deterministic_enabled()  # an op without a deterministic form would only warn
    finally:
        torch.use_deterministic_algorithms(False)


def test_two_deterministic_runs_give_identical_records(tmp_path: Path, clean_environment: pytest.MonkeyPatch) -> None:
    first, second, plain = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    assert run_sweeps(_sweeps(), first, "cpu", log=lambda s: None, deterministic=True) == 6
    assert not torch.are_deterministic_algorithms_enabled()  # the call's mode ends with it
    assert run_sweeps(_sweeps(), second, "cpu", log=lambda s: None, deterministic=True) == 6
    assert run_sweeps(_sweeps(), plain, "cpu", log=lambda s: None) == 6
    assert [r["deterministic"] for r in read_records(first) + read_records(second)] == [True] * 12
    assert [r["deterministic"] for r in read_records(plain)] == [False] * 6
    a, b = _outcomes(first), _outcomes(second)
    assert len(a) == 6 and a == b  # bitwise: floats compared with ==
    assert all(len(o["loss_history"]) == o["epochs_trained"] >= 1 for o in a.values())


def test_cli_deterministic_run_records_the_mode(tmp_path: Path, clean_environment: pytest.MonkeyPatch) -> None:
    out = tmp_path / "r.jsonl"
    argv = ["run", "--preset", "tiny", "--families", "attention", "--epochs", "1", "--out", str(out)]
    assert frontier_main([*argv, "--device", "cpu", "--no-progress", "--deterministic"]) == 0
    records = read_records(out)
    assert len(records) == 2 and all(r["deterministic"] is True for r in records)
    assert determinism.os.environ[CUBLAS_VARIABLE] == ":4096:8"  # set by the command, before any CUDA work


def test_bad_flag_refused_before_work(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    with pytest.raises(ValueError, match=r"deterministic='yes': needs true or false"):
        run_sweeps(_sweeps(), out, "cpu", deterministic="yes")
    with pytest.raises(ValueError, match=r"deterministic=1: needs true or false"):
        run_multiprocess(_sweeps(), out, ["cpu"], deterministic=1)
    with pytest.raises(ValueError, match=r"deterministic=None"):
        with deterministic_mode(None):
            pass
    assert not out.exists()


def test_unreproducible_cublas_value_refused(tmp_path: Path, clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv(CUBLAS_VARIABLE, ":0:0")
    out = tmp_path / "r.jsonl"
    with pytest.raises(ValueError, match=r"CUBLAS_WORKSPACE_CONFIG=':0:0': deterministic mode needs one of"):
        run_sweeps(_sweeps(), out, "cpu", deterministic=True)
    assert not out.exists()
    assert not torch.are_deterministic_algorithms_enabled()


def test_cuda_started_without_cublas_setting_refused(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setattr(torch.cuda, "is_initialized", lambda: True)
    with pytest.raises(ValueError, match=r"deterministic=True: this process initialised CUDA before CUBLAS_WORK"):
        with deterministic_mode(True):
            pass
    assert not torch.are_deterministic_algorithms_enabled()
    clean_environment.setenv(CUBLAS_VARIABLE, ":4096:8")  # set before CUDA started: accepted
    with deterministic_mode(True):
        assert deterministic_enabled()


@pytest.mark.parametrize(
    ("flags", "env", "names"),
    [
        (("--deterministic", "--ray"), None, "--deterministic: not with --ray"),
        (("--deterministic",), ":1:1", "CUBLAS_WORKSPACE_CONFIG=':1:1'"),
        (("--deterministic=1",), None, "--deterministic"),
    ],
    ids=["with-ray", "cublas-value", "flag-value"],
)
def test_cli_refuses_bad_deterministic_requests(
    flags, env, names, tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_environment: pytest.MonkeyPatch
) -> None:
    if env is not None:
        clean_environment.setenv(CUBLAS_VARIABLE, env)
    out = tmp_path / "r.jsonl"
    assert frontier_main(["run", "--preset", "tiny", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and names in err[0] and "Traceback" not in err[0]
    assert not out.exists()


# ---------------------------------------------------------------- the benchmark
def _benchmark():
    spec = importlib.util.spec_from_file_location("determinism_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(run_id: str, accuracies: list[float], losses: list[float]) -> dict:
    return {"run_id": run_id, "accuracy": [{"accuracy": a} for a in accuracies], "loss_history": losses}


def test_benchmark_compares_runs_exactly() -> None:
    bench = _benchmark()
    first = [_record("s/a", [0.5, 0.25], [2.0, 1.0]), _record("s/b", [1.0, 0.75], [1.5, math.nan])]
    second = [_record("s/b", [1.0, 0.5], [1.5, math.nan]), _record("s/a", [0.5, 0.25], [2.0, 1.0 + 2**-40])]
    c = bench.compare_runs(first, second)
    assert (c["runs"], c["runs_identical"], c["runs_differing"]) == (2, 0, 2)
    assert c["max_abs_delta_accuracy"] == 0.25 and c["median_abs_delta_accuracy"] == 0.125
    assert c["max_abs_delta_final_loss"] == 2**-40  # the NaN loss of the diverged run is left out of the deltas
    same = bench.compare_runs(first, [dict(r) for r in first])
    assert (same["runs_identical"], same["runs_differing"], same["max_abs_delta_accuracy"]) == (2, 0, 0.0)
    assert same["runs_loss_history_identical"] == 2  # NaN equals NaN here: the same diverged history
    with pytest.raises(ValueError, match="records: the repetitions hold different runs"):
        bench.compare_runs(first, first[:1])


def test_benchmark_steady_epoch_and_slowdown() -> None:
    bench = _benchmark()
    timings = {"stacks": [{"epoch_seconds": [9.0, 1.0, 3.0, 2.0]}, {"epoch_seconds": [5.0, 0.5, 0.5]}]}
    assert bench.steady_epoch_seconds(timings) == 2.5  # the first epoch (compilation) left out
    assert bench.steady_epoch_seconds({"stacks": [{"epoch_seconds": [1.0]}]}) is None
    reps = [
        {"deterministic": d, "ok": True, "process_seconds": p, "train_seconds": t, "steady_epoch_seconds": s}
        for d, p, t, s in [(False, 10, 4, 1.0), (True, 12, 6, 1.5), (False, 10, 4, 1.0), (True, 14, 6, 2.5)]
    ]
    summary = bench.summarise_timings(reps)
    assert summary["modes"]["on"]["median_steady_epoch_seconds"] == 2.0
    assert summary["slowdown"] == {"steady_epoch_seconds": 2.0, "train_seconds": 1.5, "process_seconds": 1.3}


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--repeats", "1"], "--repeats=1: needs at least 2"),
        (["--epochs", "0"], "--epochs=0: needs at least 1"),
        (["--time-budget-s", "0"], "--time-budget-s=0.0"),
        (["--seeds", "1", "1"], "--seeds=[1, 1]"),
        (["--device", "cuda:99"], "--device: device='cuda:99'"),
        (["--families", "rnn"], "--families: ['rnn'] not in preset 'tiny'"),
        (["--example-scale", "2"], "example_scale=2.0"),
    ],
)
def test_benchmark_refuses_bad_options(argv: list[str], names: str, tmp_path: Path) -> None:
    bench = _benchmark()
    with pytest.raises(ValueError, match=None) as info:
        bench.main(["--preset", "tiny", "--device", "cpu", "--out-dir", str(tmp_path / "out"), *argv])
    assert names in str(info.value)
    assert not (tmp_path / "out").exists()  # refused before any work


def test_benchmark_cpu_smoke_run(tmp_path: Path) -> None:
    """Four fresh processes (off, on, off, on) train the tiny sweep; the files hold what the lead reads."""
    bench = _benchmark()
    out = tmp_path / "out"
    argv = ["--device", "cpu", "--preset", "tiny", "--families", "attention", "--epochs", "2", "--seeds", "0"]
    assert bench.main([*argv, "--example-scale", "0.25", "--out-dir", str(out), "--work-dir", str(tmp_path / "w")]) == 0
    result = json.loads((out / "determinism.json").read_text())
    assert [(r["deterministic"], r["ok"]) for r in result["repetitions"]] == [(False, True), (True, True)] * 2
    assert result["budget_exhausted"] is False and result["repetitions_planned"] == 4
    assert result["sweep"]["runs"] == 2 and result["sweep"]["models"] == "attention-d32"
    on = result["comparison"]["on"]
    assert on["runs"] == 2 and on["runs_identical"] == 2 and on["runs_loss_history_identical"] == 2
    assert result["comparison"]["off"]["runs"] == 2
    modes = result["timings"]["modes"]
    assert modes["on"]["repetitions"] == modes["off"]["repetitions"] == 2
    assert all(s > 0 for s in modes["on"]["steady_epoch_seconds"] + modes["off"]["train_seconds"])
    assert result["timings"]["slowdown"]["steady_epoch_seconds"] > 0
    assert result["machine"]["device_type"] == "cpu" and result["machine"]["torch"] == torch.__version__
    table = (out / "determinism.md").read_text()
    assert "| on | 2 | 2 | 0 |" in table and "steady epoch (s)" in table


def test_benchmark_time_budget_stops_new_repetitions(tmp_path: Path) -> None:
    bench = _benchmark()
    out = tmp_path / "out"
    argv = ["--device", "cpu", "--preset", "tiny", "--families", "attention", "--epochs", "1", "--seeds", "0"]
    assert bench.main([*argv, "--time-budget-s", "0.001", "--out-dir", str(out)]) == 0
    result = json.loads((out / "determinism.json").read_text())
    assert result["budget_exhausted"] is True and len(result["repetitions"]) == 1  # the first always starts
    assert result["comparison"] == {}
    assert "The time budget (0.001 s) stopped the plan" in (out / "determinism.md").read_text()
