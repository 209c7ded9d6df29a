"""benchmarks/micro_batch_memory.py on the CPU: its live-storage peak is exact on a known computation, and it writes
one row per family and mode with the ratio it states."""

from __future__ import annotations

import json

import pytest
import torch

from tests.frontier.conftest import load_benchmark


@pytest.fixture
def script(monkeypatch):
    return load_benchmark("micro_batch_memory", monkeypatch)


class TwoTemporaries(torch.nn.Module):
    def forward(self, x):  # x * 2 is alive while its + 1 is made; a view adds nothing; both freed at the end
        doubled = x * 2
        return (doubled.view(-1) + 1).view_as(x)


class AView(torch.nn.Module):
    def forward(self, x):
        return x[:, :2]


def test_the_peak_counts_each_live_storage_once_and_frees_it(script):
    u = torch.randn(3, 5)
    assert script.peak_bytes(TwoTemporaries(), u, train=False) == 2 * u.nbytes
    assert script.peak_bytes(AView(), u, train=False) == 0  # a view of the input creates no storage


def test_the_benchmark_writes_each_familys_memory_per_example(script, tmp_path):
    argv = ["--device", "cpu", "--width", "32", "--data-preset", "tiny", "--families", "attention", "delta_net"]
    assert script.main([*argv, "--out-dir", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "micro_batch_memory.json").read_text())
    assert [(r["family"], r["mode"], r["seq_len"]) for r in report["rows"]] == [
        ("attention", "train", 32),
        ("attention", "eval", 32),
        ("delta_net", "train", 32),
        ("delta_net", "eval", 32),
    ]
    for r in report["rows"]:
        assert r["bytes_per_example"] > 0
        assert r["measured_over_estimate"] == r["bytes_per_example"] / (4 * r["estimate_elements"])
    assert "| `delta_net` |" in (tmp_path / "micro_batch_memory.md").read_text()


def test_an_unknown_family_is_refused_before_any_work(script, capsys):
    with pytest.raises(SystemExit) as stop:
        script.main(["--device", "cpu", "--families", "mamba3"])
    assert stop.value.code == 2 and "--families: ['mamba3'] not registered" in capsys.readouterr().err
