"""benchmarks/epoch_check.py on the CPU (its parts timed on a tiny stack, its bad input refused) and train.epoch_plan,
the epoch's batch order that it and train_stack share."""

from __future__ import annotations

import json

import pytest
import torch

from mqarkit.gpu.frontier.presets import get_preset
from mqarkit.gpu.frontier.runner import make_data
from mqarkit.gpu.frontier.train import epoch_plan
from tests.frontier.conftest import load_benchmark

TINY = ["--preset", "tiny", "--family", "attention", "--d-model", "32", "--device", "cpu"]


@pytest.fixture
def script(monkeypatch):
    return load_benchmark("epoch_check", monkeypatch)


def test_epoch_plan_takes_every_row_of_every_segment_once_in_batches_of_one_segment():
    (sweep,) = get_preset("tiny")
    train, _ = make_data(sweep, torch.device("cpu"))
    plan = epoch_plan(train, 7, torch.Generator().manual_seed(3))
    for si, seg in enumerate(train):
        batches = [rows for s, rows in plan if s == si]
        assert all(1 <= rows.numel() <= 7 for rows in batches)
        assert sorted(torch.cat(batches).tolist()) == list(range(seg.inputs.shape[0]))
    assert [s for s, _ in plan] != sorted(s for s, _ in plan)  # the segments' batches are shuffled together
    again = epoch_plan(train, 7, torch.Generator().manual_seed(3))
    assert all(a == b and torch.equal(x, y) for (a, x), (b, y) in zip(plan, again))


def test_it_times_each_part_and_writes_its_report(script, tmp_path):
    assert script.main([*TINY, "--epochs", "3", "--out-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "epoch_check.json").read_text())
    result = report["result"]
    parts = result["parts"]
    (sweep,) = get_preset("tiny")
    assert result["steps_per_epoch"] == sum(-(-s.num_examples // sweep.batch_size) for s in sweep.train)
    assert parts["steps by segment"]["steps"] == parts["steps shuffled"]["steps"] == result["steps_per_epoch"]
    for name in ("projection", "steps by segment", "steps shuffled", "evaluation"):
        assert parts[name]["seconds"] > 0
    assert len(parts["train_stack"]["epoch_s"]) == 3
    assert all(s > 0 for s in parts["train_stack"]["epoch_s"])
    assert result["runs"] == len(result["stack"]) > 0
    table = (tmp_path / "epoch_check.md").read_text()
    assert "| train_stack, warm epochs (median) |" in table and "| steps shuffled |" in table


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--epochs", "1"], "--epochs=1"),
        (["--max-stack-runs", "0"], "--max-stack-runs=0"),
        (["--stack", "99"], "--stack=99"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_any_work(script, tmp_path, capsys, extra, named):
    assert script.main([*TINY, *extra, "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and named in err
    assert not any(tmp_path.iterdir())


def test_the_stack_is_the_sweep_s_at_the_seeds_given(script):
    args = script.parse_args(["--preset", "based-fig2", "--family", "h3", "--d-model", "64", "--seeds", "0", "1", "2"])
    sweep, stack = script.the_stack(args)
    assert len(stack) == 12 and {r.seed for r in stack} == {0, 1, 2} and {r.model.layers for r in stack} == {"mixer"}
    assert [r.run_id for r in stack] == [r.run_id for r in sweep.runs()]  # the preset's H3 d = 64 stack, whole


def test_an_unknown_width_names_the_option(script, tmp_path, capsys):
    argv = ["--preset", "tiny", "--family", "attention", "--d-model", "17", "--out-dir", str(tmp_path)]
    assert script.main(argv) == 2
    assert "d_models=[17]" in capsys.readouterr().err


def test_the_gpu_summary_takes_each_part_s_samples_only(script):
    sampler = script.SmiSampler()
    fields = (*script.SMI_FIELDS, script.REASONS)
    sampler.samples = [
        {"part": "a", **dict(zip(fields, ("1980", "400.5", "60", "0x0000000000000000")))},
        {"part": "a", **dict(zip(fields, ("1600", "699.5", "71", "0x0000000000000004")))},
        {"part": "a", **dict(zip(fields, ("1700", "500.0", "65", None)))},
        {"part": "b", **dict(zip(fields, ("900", "[N/A]", "50", "0x0000000000000000")))},
    ]
    a = sampler.summary("a")
    assert a["samples"] == 3 and a["sm_clock_mhz_median"] == 1700.0 and a["power_w_mean"] == 1600.0 / 3
    assert a["temperature_c_max"] == 71.0 and a["clock_event_reasons"] == ["0x0000000000000000", "0x0000000000000004"]
    assert sampler.summary("b")["power_w_mean"] is None  # a reading nvidia-smi could not give is left out
    assert sampler.summary("c") is None


def test_a_reading_takes_the_reasons_from_whichever_name_the_driver_knows(script, monkeypatch):
    answers = {
        ",".join(script.SMI_FIELDS): "1980, 400.5, 60",
        "clocks_event_reasons.active": 'Field "clocks_event_reasons.active" is not a valid field to query.',
        "clocks_throttle_reasons.active": "0x0000000000000001",
    }
    monkeypatch.setattr(script, "nvidia_smi_query", answers.get)
    reading = script.SmiSampler().read()
    assert reading == {
        "clocks.sm": "1980",
        "power.draw": "400.5",
        "temperature.gpu": "60",
        script.REASONS: "0x0000000000000001",
    }
    del answers["clocks_throttle_reasons.active"]
    assert script.SmiSampler().read()[script.REASONS] is None  # the numbers kept without the mask
    answers[",".join(script.SMI_FIELDS)] = None
    assert script.SmiSampler().read() is None
