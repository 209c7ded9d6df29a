"""A sweep file with the h3, hyena and mamba families runs on the CPU through ``mqarkit frontier run`` and records,
for every run, the accuracy of every test slice and the measured state (layer 0's cache plus the family's formula)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

from mqarkit.gpu.frontier import read_records
from mqarkit.gpu.frontier.families import family_class

SWEEP = Path(__file__).with_name("h3_hyena_mamba.toml")


def test_the_sweep_runs_on_the_cpu_and_records_accuracy_and_measured_state(tmp_path):
    out = tmp_path / "runs.jsonl"
    cmd = [sys.executable, "-m", "mqarkit.cli", "frontier", "run", "--sweep", str(SWEEP), "--out", str(out)]
    proc = subprocess.run([*cmd, "--device", "cpu"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read_records(out)
    runs = sorted((r["family"], r["model"].get("d_state")) for r in records)
    assert runs == [("h3", 2), ("h3", 8), ("hyena", None), ("mamba", 4), ("mamba", 8)]
    for r in records:
        assert r["status"] == "finished"
        slices = [(s["seq_len"], s["num_kv_pairs"]) for s in r["accuracy"]]
        assert slices == [(16, 2), (32, 4)]
        assert all(0 <= s["accuracy"] <= 1 and math.isfinite(s["accuracy"]) for s in r["accuracy"])
        knobs = {k: r["model"][k] for k in ("d_state", "head_dim") if k in r["model"]}
        d, max_len = r["model"]["d_model"], r["model"]["max_len"]
        formula = family_class(r["family"]).state_formula(d, max_len, knobs, 32)
        assert r["state_measured"] and r["state_source"] == "recurrent mode"
        assert r["state_measured_at_seq_len"] == 32
        assert r["state_numbers"] == 2 * d + formula  # layer 0 keeps its short filter's last 2 inputs
        assert r["state_bytes"] == 4 * r["state_numbers"]
