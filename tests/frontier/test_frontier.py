"""Tests of the frontier harness (CPU, tiny sizes): data, stacked model, optimiser, records, resumability, plot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from mqarkit.gpu.frontier import get_preset, read_records, run_multiprocess, run_sweeps
from mqarkit.gpu.frontier.config import ModelConfig
from mqarkit.gpu.frontier.data import IGNORE_INDEX, Segment, mqar_batch
from mqarkit.gpu.frontier.model import StackedHybrid
from mqarkit.gpu.frontier.optim import StackedAdamW
from mqarkit.gpu.frontier.plot import pareto_front
from mqarkit.gpu.frontier.steps import SegmentData, query_loss
from mqarkit.gpu.frontier.tracking import Tracking
from mqarkit.information import binary_entropy, fano_max_accuracy
from mqarkit.tolerances import assert_close


def test_data_invariants():
    g = torch.Generator().manual_seed(0)
    x, y = mqar_batch(64, 32, 4, 500, generator=g)
    assert x.shape == y.shape == (500, 32)
    keys, vals = x[:, 0:8:2], x[:, 1:8:2]
    assert bool(((keys >= 1) & (keys < 32)).all()) and bool(((vals >= 32) & (vals < 64)).all())
    assert all(len(set(r.tolist())) == 4 for r in keys) and all(len(set(r.tolist())) == 4 for r in vals)
    mask = y != IGNORE_INDEX
    assert bool((mask.sum(1) == 4).all())
    for i in range(50):
        pos = mask[i].nonzero().flatten()
        assert bool((pos % 2 == 0).all()) and bool((pos >= 8).all())
        for p in pos.tolist():  # the query is a key and the label is its value
            k = int(x[i, p])
            j = keys[i].tolist().index(k)
            assert int(y[i, p]) == int(vals[i, j])
        assert int((x[i, 8:] != 0).sum()) == 4


def test_data_matches_cpu_reference_distribution():
    task = pytest.importorskip("mqarkit.task")
    spec = task.MQARSpec(vocab_size=128, seq_len=64, num_kv_pairs=4, power_a=0.01)
    ref = task.generate(spec, 4000, np.random.default_rng(0))
    ref_inputs = np.asarray(ref[0] if isinstance(ref, tuple) else ref.inputs)
    x, _ = mqar_batch(128, 64, 4, 4000, generator=torch.Generator().manual_seed(0))
    ours = x.numpy()
    # the query-slot distribution (power law): mean first-query position and histogram of query positions
    qa = (ours[:, 8:] != 0).nonzero()[1]
    qb = (ref_inputs[:, 8:] != 0).nonzero()[1]
    ha, hb = np.bincount(qa, minlength=56) / qa.size, np.bincount(qb, minlength=56) / qb.size
    assert np.abs(ha - hb).max() < 0.03
    assert abs(ours[:, :8:2].mean() - ref_inputs[:, :8:2].mean()) < 1.0


def test_data_bad_input():
    g = torch.Generator()
    with pytest.raises(ValueError, match="num_kv_pairs"):
        mqar_batch(64, 16, 5, 1, generator=g)
    with pytest.raises(ValueError, match="vocab_size"):
        mqar_batch(16, 32, 2, 1, generator=g)


def _stack(family, knobs, d=32, seeds=(1, 2)):
    cfgs = [ModelConfig(family, d, vocab_size=64, max_len=32, **k) for k in knobs]
    return StackedHybrid(cfgs, list(seeds))


BASED = [{"feature_dim": 4}, {"feature_dim": 8}]


def test_hidden_at_bad_query_positions():
    model = _stack("based", BASED)
    x = torch.zeros(3, 8, dtype=torch.long)
    with pytest.raises(ValueError, match="qpos"):
        model.hidden_at(x, torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="x: needs token ids"):
        model.hidden_at(x[0], torch.zeros(3, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="qpos: needs integer"):
        model.hidden_at(x, torch.zeros(3, 1))


def test_stacked_adamw_matches_torch_adamw():
    model = _stack("based", BASED[:1], seeds=(5,))
    ref = StackedHybrid(model.configs, [5])
    opt = StackedAdamW(model, torch.tensor([1e-2]))
    topt = torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.1)
    g = torch.Generator().manual_seed(0)
    seg = SegmentData(Segment(16, 2, 8), *mqar_batch(64, 16, 2, 8, generator=g))
    for _ in range(3):
        for m in (model, ref):
            query_loss(m, seg.inputs, seg.qpos, seg.targets, seg.qpos.numel()).backward()
        opt.step(1.0)
        topt.step()
        topt.zero_grad()
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):  # one run: nothing padded
        assert_close(p, q, dtype="float32", context=name)


def test_stacked_adamw_state_is_replayable():
    """What a CUDA graph of a step relies on: per-step quantities live in tensors updated in place."""
    model = _stack("based", BASED, seeds=(5, 6))
    opt = StackedAdamW(model, torch.tensor([1e-2, 2e-2]))
    lr_tensors = [t for t in opt.lr_full]
    opt.set_active(torch.tensor([True, False]))
    assert all(a is b for a, b in zip(opt.lr_full, lr_tensors))  # written in place, not replaced
    assert not bool(opt.lr_full[0][1].any()) and bool(opt.lr_full[0][0].all())  # run 1 frozen
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.set_factor(0.5)
    opt.step(clear_grads=False)
    assert float(opt.t) == 1.0 and float(opt.neg_factor) == -0.5
    assert all(p.grad is not None for p in model.parameters())  # a graph's gradient buffers stay
    for p, b in zip(model.parameters(), before):  # run 0 moved, the frozen run 1 did not
        assert not torch.equal(p.detach()[0], b[0]) and torch.equal(p.detach()[1], b[1])


def test_invalid_presets_fail_before_work():
    with pytest.raises(ValueError, match="preset"):
        get_preset("nope")
    with pytest.raises(ValueError, match="epochs"):
        get_preset("tiny", epochs=0)
    with pytest.raises(ValueError, match="families"):
        get_preset("tiny", families=("rnn",))
    with pytest.raises(ValueError, match="feature_dim"):
        ModelConfig("based", 32).validate()
    with pytest.raises(ValueError, match="d_models"):
        get_preset("based-slice", d_models=(96,))


def test_preset_restricted_to_widths_keeps_run_ids():
    whole = {r.run_id for r in get_preset("based-slice")[0].runs()}
    parts = [get_preset("based-slice", d_models=(d,))[0] for d in (48, 64, 128)]
    assert [len(p.runs()) for p in parts] == [12, 12, 12]
    assert set().union(*({r.run_id for r in p.runs()} for p in parts)) == whole  # parts resume into one file


def test_fano_and_pareto():
    assert fano_max_accuracy(10**6, 4, 32) == 1.0
    a0 = fano_max_accuracy(0, 8, 64)
    assert 1 / 64 <= a0 < 0.1
    # at the returned accuracy the Fano inequality holds with equality (the bound is tight there)

    p = 1 - a0
    need = sum(np.log2(64 - i) for i in range(8))
    assert abs(8 * (binary_entropy(p) + p * np.log2(63)) - need) < 1e-9
    assert fano_max_accuracy(20, 8, 64) <= fano_max_accuracy(40, 8, 64)
    assert pareto_front([(1, 0.5), (2, 0.4), (3, 0.9), (3, 0.1)]) == [(1, 0.5), (3, 0.9)]


def test_sweep_records_and_resume(tmp_path):
    out = tmp_path / "r.jsonl"
    sweeps = get_preset("tiny", epochs=1, families=("based", "mamba2"))
    assert run_sweeps(sweeps, out, "cpu", log=lambda s: None) == 6
    recs = read_records(out)
    assert len(recs) == 6 and all(r["state_bytes"] == 4 * r["state_numbers"] > 0 for r in recs)
    assert {len(r["accuracy"]) for r in recs} == {2}
    assert all(r["git_dirty"] in (True, False, None) and r["git_commit"] for r in recs)  # provenance recorded
    assert run_sweeps(sweeps, out, "cpu", log=lambda s: None) == 0  # all finished: nothing reruns


def test_killed_sweep_records_no_partial_run(tmp_path):
    out = tmp_path / "k.jsonl"
    code = (
        "import time, mqarkit.gpu.frontier.train as t\n"
        "from mqarkit.gpu.frontier import get_preset, run_sweeps\n"
        "orig = t.train_step\n"
        "calls = [0]\n"
        "def slow(*a):\n    calls[0] += 1\n    time.sleep(0.05)\n    return orig(*a)\n"
        "t.train_step = slow\n"
        "import mqarkit.gpu.frontier as f\n"
        f"run_sweeps(get_preset('tiny', epochs=2), {str(out)!r}, 'cpu', log=lambda s: print(s, flush=True))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and len(read_records(out)) == 0:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = read_records(out)
    assert 0 < len(partial) < 12
    assert all(r["epochs_trained"] >= 1 for r in partial)
    n = run_sweeps(get_preset("tiny", epochs=2), out, "cpu", log=lambda s: None)
    assert n == 12 - len(partial)
    ids = [r["run_id"] for r in read_records(out)]
    assert len(ids) == len(set(ids)) == 12


def test_multiprocess_cpu_workers(tmp_path):
    """Two worker processes share the stacks; each tracks its runs (TensorBoard: one event folder per run)."""
    out = tmp_path / "m.jsonl"
    sweeps = get_preset("tiny", epochs=1, families=("attention", "long_conv", "sliding_window"))
    assert run_multiprocess(sweeps, out, ["cpu", "cpu"], tracking=Tracking("tensorboard", str(tmp_path / "tb"))) == 6
    ids = {r["run_id"] for r in read_records(out)}
    assert len(ids) == 6
    assert json.loads(out.read_text().splitlines()[0])["status"] == "finished"
    assert {p.parent.relative_to(tmp_path / "tb").as_posix() for p in (tmp_path / "tb").rglob("events.*")} == ids


def test_multiprocess_rerun_counts_runs_finished_in_stale_shards(tmp_path):
    """Shards left by an earlier call count as finished work even when the merged file was removed: a rerun trains
    nothing again and records every run once."""
    out = tmp_path / "m.jsonl"
    sweeps = get_preset("tiny", epochs=1, families=("attention", "long_conv"))
    assert run_multiprocess(sweeps, out, ["cpu", "cpu"]) == 4
    out.unlink()
    (tmp_path / "m.worker1.jsonl").unlink()  # shards that disagree: worker 0's runs survive only in its shard
    survivors = {r["run_id"] for r in read_records(tmp_path / "m.worker0.jsonl")}
    assert 0 < len(survivors) < 4
    assert run_multiprocess(sweeps, out, ["cpu", "cpu", "cpu"]) == 4 - len(survivors)
    ids = [r["run_id"] for r in read_records(out)]
    assert len(ids) == len(set(ids)) == 4


def test_two_concurrent_cli_sweeps_into_one_file_keep_every_record(tmp_path):
    """Two ``mqarkit frontier run`` processes with disjoint families write to one ``--out`` at the same time: every
    run of both ends in the file once, and nothing is moved aside."""
    out = tmp_path / "both.jsonl"
    base = [sys.executable, "-m", "mqarkit.cli", "frontier", "run", "--preset", "tiny", "--epochs", "1"]
    procs = [
        subprocess.Popen([*base, "--families", *fams, "--out", str(out), "--device", "cpu"], stderr=subprocess.PIPE)
        for fams in (("attention", "sliding_window", "mamba2"), ("based", "long_conv"))
    ]
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read().decode()[-2000:]
    expected = {r.run_id for r in get_preset("tiny", epochs=1)[0].runs()}
    ids = [r["run_id"] for r in read_records(out)]
    assert sorted(ids) == sorted(expected) and not (tmp_path / "both.jsonl.rejected").exists()


def test_an_unwritable_output_is_refused_before_any_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = subprocess.run(
        [sys.executable, "-m", "mqarkit.cli", "frontier", "run", "--preset", "tiny", "--out", str(blocker / "r.jsonl")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "out=" in proc.stderr and "Traceback" not in proc.stderr
    assert "data on" not in proc.stdout  # refused before any data was generated
