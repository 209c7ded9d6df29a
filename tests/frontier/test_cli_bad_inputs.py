"""Bad flags of ``mqarkit frontier run`` (Ray, progress, tracking): each refused on one line with exit 2, before any
work (harness: ``tests/bad_inputs.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bad_inputs import CliCase, assert_cli_refuses, cli_params

# argv entries are str.format'ed by the harness ({dir}, {file}): JSON braces are doubled
RUN = ("frontier", "run", "--preset", "tiny", "--out", "{dir}/r.jsonl")


def L(case_id: str, flags: tuple[str, ...], names: str) -> CliCase:
    return CliCase(case_id, RUN + flags, names)


CASES = [
    L("gpus-without-ray", ("--gpus-per-task", "1"), "--gpus-per-task: only with --ray"),
    L("retries-without-ray", ("--ray-retries", "1"), "--ray-retries: only with --ray"),
    L("tasks-without-ray", ("--ray-tasks", "2"), "--ray-tasks: only with --ray"),
    L("address-without-ray", ("--ray-address", "auto"), "--ray-address: only with --ray"),
    L("runtime-env-without-ray", ("--ray-runtime-env", "{{}}"), "--ray-runtime-env: only with --ray"),
    L("ray-and-devices", ("--ray", "--devices", "cpu"), "--ray, --devices: give one of them"),
    L("gpus-negative", ("--ray", "--gpus-per-task", "-1"), "--gpus-per-task=-1.0: needs a finite number >= 0"),
    L("gpus-nan", ("--ray", "--gpus-per-task", "nan"), "--gpus-per-task=nan"),
    L("gpus-fraction-above-one", ("--ray", "--gpus-per-task", "1.5"), "--gpus-per-task=1.5: needs a fraction <= 1"),
    L("gpus-text", ("--ray", "--gpus-per-task", "one"), "--gpus-per-task"),
    L("retries-negative", ("--ray", "--ray-retries", "-1"), "--ray-retries=-1: needs an integer >= 0"),
    L("tasks-zero", ("--ray", "--ray-tasks", "0"), "--ray-tasks=0: needs at least 1"),
    L("runtime-env-not-json", ("--ray", "--ray-runtime-env", "{{nope"), "--ray-runtime-env: not JSON"),
    L("runtime-env-list", ("--ray", "--ray-runtime-env", "[1]"), "--ray-runtime-env='[1]': needs a JSON object"),
    L("runtime-env-bad-vars", ("--ray", "--ray-runtime-env", '{{"env_vars": {{"A": 1}}}}'), "runtime_env="),
    L("runtime-env-missing-path", ("--ray", "--ray-runtime-env", '{{"py_modules": ["{dir}/no"]}}'), "not a valid path"),
    L("log-unknown", ("--log", "mlflow"), "--log"),
    L("log-dir-without-log", ("--log-dir", "{dir}/logs"), "--log-dir: only with --log"),
    L("log-dir-under-file", ("--log", "tensorboard", "--log-dir", "{file}/logs"), "log_dir="),
    L("no-progress-value", ("--no-progress=1",), "--no-progress"),
    L("device-unknown", ("--device", "nonsense"), "--device: device='nonsense': not a torch device string"),
    L("device-missing-gpu", ("--device", "cuda:99"), "--device: device='cuda:99'"),
    L("devices-missing-gpu", ("--devices", "cpu", "cuda:99"), "--devices: device='cuda:99'"),
    L("device-with-devices", ("--device", "cpu", "--devices", "cpu"), "--device: not with --ray or --devices"),
    L("epochs-zero", ("--epochs", "0"), "epochs=0: needs an integer epochs >= 1"),
    L("seeds-repeated", ("--seeds", "1", "1"), "seeds=[1, 1]"),
    L("family-unknown", ("--families", "rnn"), "families=['rnn']"),
    L("example-scale-zero", ("--example-scale", "0"), "example_scale=0"),
]


@pytest.mark.parametrize("case", cli_params(CASES))
def test_frontier_run_refuses_bad_flags(case: CliCase, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert_cli_refuses(case, capsys, tmp_path)
    assert not (tmp_path / "r.jsonl").exists()  # refused before any work
