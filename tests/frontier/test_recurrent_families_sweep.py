"""Issue 16's recurrent families in a sweep file, end to end on the CPU: ``mqarkit frontier run --sweep`` trains
every run, and each record holds its per-slice accuracy and a state measured from recurrent mode that equals the
family's closed form (plus layer 0's short-conv cache)."""

from __future__ import annotations

import json
from pathlib import Path

from mqarkit.cli import main as mqarkit
from mqarkit.gpu.frontier.families import family_class

SWEEP = Path(__file__).parent / "sweeps" / "recurrent_families.toml"
FAMILIES = {"mamba2", "rwkv4", "rwkv7", "gla", "delta_net", "gated_delta_net"}
TEST_SLICES = [(16, 2), (32, 4)]  # (seq_len, num_kv_pairs) of the sweep file's test segments
CONV_KERNEL = 3  # the trunk's default short filter: layer 0 carries its last 2 inputs


def test_sweep_of_the_recurrent_families_records_accuracy_and_measured_state(tmp_path):
    out = tmp_path / "runs.jsonl"
    assert mqarkit(["frontier", "run", "--sweep", str(SWEEP), "--out", str(out), "--device", "cpu"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["family"] for r in records} == FAMILIES
    assert len(records) == 11  # every model of the file, two knob values each but for rwkv4
    for r in records:
        assert r["status"] == "finished", r["run_id"]
        assert [(s["seq_len"], s["num_kv_pairs"]) for s in r["accuracy"]] == TEST_SLICES, r["run_id"]
        assert all(0.0 <= s["accuracy"] <= 1.0 for s in r["accuracy"]), r["run_id"]
        assert r["state_measured"] is True and r["state_source"] == "recurrent mode", r["run_id"]
        cls, model, n = family_class(r["family"]), r["model"], r["state_measured_at_seq_len"]
        formula = cls.state_formula(model["d_model"], model["max_len"], {k.name: model[k.name] for k in cls.knobs}, n)
        assert r["state_numbers"] == (CONV_KERNEL - 1) * model["d_model"] + formula, r["run_id"]


def test_fla_gated_backward_guard_follows_flas_own_flags(monkeypatch):
    """Where fla 0.6 would raise in the gated backward (Hopper, triton in [3.4, 3.7.1), no tilelang), the harness
    does not choose fla's simple-GLA / gated-delta path; elsewhere the guard says nothing. Checked with fla's flags
    stubbed, since CI has neither fla nor a GPU."""
    import sys
    import types

    from mqarkit.gpu.frontier.kernels import fla_common

    for hopper, above_34, above_371, refused in [
        (True, True, False, True),
        (True, True, True, False),
        (False, True, False, False),
        (True, False, False, False),
    ]:
        stub = types.ModuleType("fla.utils")
        stub.IS_NVIDIA_HOPPER, stub.TRITON_ABOVE_3_4_0, stub.TRITON_ABOVE_3_7_1 = hopper, above_34, above_371
        monkeypatch.setitem(sys.modules, "fla", types.ModuleType("fla"))
        monkeypatch.setitem(sys.modules, "fla.utils", stub)
        monkeypatch.setattr(fla_common.importlib.util, "find_spec", lambda name: None)
        fla_common.gated_backward_refused.cache_clear()
        assert fla_common.gated_backward_refused() is refused
    fla_common.gated_backward_refused.cache_clear()


def test_gated_backward_says_who_computes_flas_refused_kernel(monkeypatch):
    """fla's own kernel where it is not refused; where it is, our torch form, unless switched off (then fla's gated
    ops do not serve and Mamba-2 takes its plain-torch path, as Gated DeltaNet does there in any case)."""
    from mqarkit.gpu.frontier.kernels import fla_common

    for refused, switch, who in [
        (False, "1", "fla"),
        (False, "0", "fla"),
        (True, "1", "torch"),
        (True, "0", None),
    ]:
        monkeypatch.setattr(fla_common, "gated_backward_refused", lambda r=refused: r)
        monkeypatch.setenv(fla_common.TORCH_BACKWARD_SWITCH, switch)
        assert fla_common.gated_backward() == who
