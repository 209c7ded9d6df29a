"""The Ray launcher on a local CPU cluster (2 CPUs, started once for this module): one task per stack, retries, a task
that keeps failing reported while the others' records are kept, GPUs the cluster lacks refused before submitting.

Failures are injected through the launcher's test hook (``MQARKIT_TEST_RAY_FAIL_DIR`` in the tasks' runtime_env and a
marker file per stack holding how many times its task must still fail).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import ray

from mqarkit.errors import UsageError
from mqarkit.gpu.frontier import get_preset, read_records
from mqarkit.gpu.frontier.cli import main as frontier_main
from mqarkit.gpu.frontier.ray_launcher import (
    TEST_FAIL_DIR_ENV,
    RayTasksFailed,
    check_gpus_per_task,
    check_runtime_env,
    failure_marker,
    gpus_for_cluster,
    import_ray,
    run_ray,
)

FAMILIES = ("attention", "long_conv")  # two stacks of two runs each


def _sweeps():
    return get_preset("tiny", epochs=1, families=FAMILIES)


def _first_run_id(family: str) -> str:
    return next(r.run_id for r in _sweeps()[0].runs() if r.model.family == family)


@pytest.fixture(scope="module")
def cluster() -> str:
    """A local Ray cluster of 2 CPUs and no GPU; its address, for a second driver (the command line)."""
    import_ray()  # as run_ray imports it (its log settings)
    # "local": a new cluster, never one that another process on this machine started
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=True)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def test_cli_ray_run_retries_a_task_that_fails_once(cluster, tmp_path):
    """``mqarkit frontier run --ray`` on the CPU cluster: the attention stack's task fails once and is retried; the
    sweep ends with every run recorded exactly once, and the tasks' log lines reach the driver."""
    marker = failure_marker(tmp_path, _first_run_id("attention"))
    marker.write_text("1")
    out = tmp_path / "r.jsonl"
    env = json.dumps({"env_vars": {TEST_FAIL_DIR_ENV: str(tmp_path)}})
    cmd = [sys.executable, "-m", "mqarkit.cli", "frontier", "run", "--preset", "tiny", "--epochs", "1"]
    cmd += ["--families", *FAMILIES, "--out", str(out), "--ray", "--ray-address", cluster, "--ray-runtime-env", env]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert marker.read_text() == "0"  # the task did fail once
    ids = [r["run_id"] for r in read_records(out)]
    assert sorted(ids) == sorted(r.run_id for r in _sweeps()[0].runs()) and len(ids) == 4
    assert "Ray: 2 tasks (one per stack), 0 GPUs and 1 CPU each, 2 retries each" in proc.stdout
    assert "[task " in proc.stdout  # a task's own log line, forwarded by Ray
    assert f"recorded 4 runs in {out}" in proc.stdout, proc.stdout


def test_a_task_that_keeps_failing_is_reported_and_the_others_recorded(cluster, tmp_path):
    marker = failure_marker(tmp_path, _first_run_id("attention"))
    marker.write_text("5")
    out = tmp_path / "r.jsonl"
    lines: list[str] = []
    with pytest.raises(RayTasksFailed) as info:
        run_ray(
            _sweeps(),
            out,
            gpus_per_task=0,
            retries=1,
            runtime_env={"env_vars": {TEST_FAIL_DIR_ENV: str(tmp_path)}},
            log=lines.append,
        )
    failed = info.value
    assert marker.read_text() == "3"  # two attempts: the first and one retry
    assert [f.label for f in failed.failed] == ["1/2 tiny: attention d=32"] and failed.recorded == 2
    assert "InjectedFailure" in failed.failed[0].error and failed.attempts == 2
    assert sorted(failed.failed[0].run_ids) == sorted(
        r.run_id for r in _sweeps()[0].runs() if r.model.family == "attention"
    )
    assert {r["family"] for r in read_records(out)} == {"long_conv"} and len(read_records(out)) == 2
    assert any("task 1/2 tiny: attention d=32 FAILED after 2 attempts: InjectedFailure" in line for line in lines)
    assert "rerun to train the failed stacks" in str(failed)


def test_gpus_the_cluster_lacks_are_refused_before_anything_is_submitted(cluster, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    with pytest.raises(UsageError, match=r"--gpus-per-task=1: the Ray cluster has no GPUs \(it has CPU 2"):
        run_ray(_sweeps(), out, gpus_per_task=1, log=print)
    assert "Ray: " not in capsys.readouterr().out  # nothing planned, nothing submitted
    argv = ["run", "--preset", "tiny", "--epochs", "1", "--out", str(out), "--ray", "--gpus-per-task", "1"]
    assert frontier_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "mqarkit frontier: error: --gpus-per-task=1: the Ray cluster has no GPUs"
    )
    assert not out.exists()


def test_gpus_per_task_default_and_limits():
    assert gpus_for_cluster(None, [0.0, 0.0], {"CPU": 8}) == 0.0  # no GPUs: the tasks train on CPUs
    assert gpus_for_cluster(None, [0.0, 4.0], {"GPU": 4}) == 1.0
    assert gpus_for_cluster(0.5, [1.0], {"GPU": 1}) == 0.5
    with pytest.raises(UsageError, match=r"--gpus-per-task=2: no node of the Ray cluster has that many GPUs .*most on"):
        gpus_for_cluster(2, [1.0, 1.0], {"GPU": 2})
    for bad, error in ((-1, ValueError), (float("nan"), ValueError), (1.5, ValueError), (True, TypeError)):
        with pytest.raises(error, match="--gpus-per-task"):
            check_gpus_per_task(bad)


def test_runtime_env_is_validated(tmp_path):
    check_runtime_env({"env_vars": {"A": "1"}, "py_modules": [str(tmp_path)]})
    with pytest.raises(TypeError, match="runtime_env: needs a JSON object"):
        check_runtime_env(["py_modules"])
    with pytest.raises(ValueError, match="runtime_env=.*env_vars"):
        check_runtime_env({"env_vars": {"A": 1}})
    with pytest.raises(ValueError, match="runtime_env=.*is not a valid path"):
        check_runtime_env({"py_modules": [str(tmp_path / "missing")]})


def test_local_paths_in_runtime_env_need_run_ray_to_connect(cluster, tmp_path):
    """In a process already connected to Ray the tasks carry runtime_env, and Ray uploads local paths only for a job:
    refused with what to do instead, before anything is submitted."""
    with pytest.raises(ValueError, match=r"runtime_env: .*give local paths to ray.init\(runtime_env=...\) instead"):
        run_ray(_sweeps(), tmp_path / "r.jsonl", gpus_per_task=0, runtime_env={"py_modules": [str(tmp_path)]})
    assert not (tmp_path / "r.jsonl").exists()
