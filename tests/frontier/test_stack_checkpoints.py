"""A stack stopped between epochs continues where it stopped: the same records as a stack never stopped (CPU, the
``tiny`` preset), the saved state written atomically and removed with the records, an unusable file set aside."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mqarkit.gpu.frontier import get_preset, read_records, run
from mqarkit.gpu.frontier.checkpoints import StackCheckpoint, checkpoint_seconds, stacks_folder
from mqarkit.gpu.frontier.observers import StackObserver

SWEEP = {"epochs": 3, "lrs": (0.01,), "families": ("based",)}
SAME = ("accuracy", "overall_accuracy", "history", "loss_history", "epochs_trained", "state_numbers", "stack_steps")


class Stop(Exception):
    """Raised from an observer: the process 'ends' after an epoch (the state of that epoch is saved first)."""


class StopAfter(StackObserver):
    def __init__(self, epoch: int):
        self.epoch = epoch

    def epoch_ended(self, sweep, group, report):
        if report.epoch == self.epoch:
            raise Stop


def compare_stopped_and_whole(folder: str, device: str, family: str, deterministic: bool, log=lambda s: None) -> None:
    """A stack stopped after epoch 2 (its state saved) and run again gives the records of one never stopped (the
    ``SAME`` fields, exactly)."""
    sweep = {**SWEEP, "families": (family,)}
    whole, stopped = Path(folder) / "whole.jsonl", Path(folder) / "stopped.jsonl"
    n_runs = sum(len(s.runs()) for s in get_preset("tiny", **sweep))
    assert run(get_preset("tiny", **sweep), whole, device, log=log, deterministic=deterministic) == n_runs
    with pytest.raises(Stop):
        run(
            get_preset("tiny", **sweep), stopped, device, log=log, deterministic=deterministic, observers=[StopAfter(2)]
        )
    assert read_records(stopped) == [] and len(list(stacks_folder(stopped).glob("*.pt"))) == 1
    assert run(get_preset("tiny", **sweep), stopped, device, log=log, deterministic=deterministic) == n_runs
    before = {r["run_id"]: r for r in read_records(whole)}
    for r in read_records(stopped):
        assert r["resumed_from_epoch"] == 2
        assert {k: r[k] for k in SAME} == {k: before[r["run_id"]][k] for k in SAME}, r["run_id"]


def test_a_stopped_stack_continues_to_the_same_records(tmp_path, monkeypatch):
    monkeypatch.setenv("MQARKIT_CHECKPOINT_SECONDS", "0")  # save after every epoch
    lines = []
    compare_stopped_and_whole(str(tmp_path), "cpu", "based", False, log=lines.append)
    assert sum("resumed after epoch 2" in line for line in lines) == 1  # the resumed stack's log line
    for r in read_records(tmp_path / "stopped.jsonl"):
        assert r["trained_on"] == ["cpu", "cpu"]
    assert {r["resumed_from_epoch"] for r in read_records(tmp_path / "whole.jsonl")} == {None}
    assert not stacks_folder(tmp_path / "stopped.jsonl").exists()  # removed with the records


def test_without_a_due_save_a_stopped_stack_starts_again(tmp_path, monkeypatch):
    monkeypatch.delenv("MQARKIT_CHECKPOINT_SECONDS", raising=False)
    out = tmp_path / "r.jsonl"  # default: at most one save a minute, so a stack of seconds saves nothing
    with pytest.raises(Stop):
        run(get_preset("tiny", **SWEEP), out, "cpu", log=lambda s: None, observers=[StopAfter(2)])
    assert not stacks_folder(out).exists()
    assert run(get_preset("tiny", **SWEEP), out, "cpu", log=lambda s: None) == 2
    assert {r["resumed_from_epoch"] for r in read_records(out)} == {None}


def test_save_is_atomic_and_load_checks_the_key(tmp_path):
    ckpt = StackCheckpoint(tmp_path / "stacks", "abc", "key1", seconds=0)
    assert ckpt.load() is None and ckpt.due()
    ckpt.save({"epoch": 1, "x": torch.arange(3)})
    assert [p.name for p in (tmp_path / "stacks").iterdir()] == ["abc.pt"]  # no temporary file left
    loaded = ckpt.load()
    assert loaded["epoch"] == 1 and loaded["key"] == "key1" and torch.equal(loaded["x"], torch.arange(3))
    other = StackCheckpoint(tmp_path / "stacks", "abc", "key2", seconds=0)  # the same stack under another code
    with pytest.warns(UserWarning, match="its key is not this stack's and code's"):
        assert other.load() is None
    (kept,) = (tmp_path / "stacks").iterdir()  # kept, set aside
    assert kept.name.startswith("abc.") and kept.name.endswith(".unused")
    assert torch.load(kept, weights_only=True)["key"] == "key1"


def test_an_unreadable_file_is_kept_and_reported_and_never_overwritten(tmp_path):
    lines = []
    for content in (b"not a checkpoint", b"nor this"):
        (tmp_path / "k.pt").write_bytes(content)
        assert StackCheckpoint(tmp_path, "k", "key", seconds=0, log=lines.append).load() is None
    kept = sorted(tmp_path.glob("k.*.unused"))
    assert sorted(p.read_bytes() for p in kept) == [b"nor this", b"not a checkpoint"]
    assert len(lines) == 2 and all("starts from epoch 0" in line for line in lines)


def test_a_state_saved_under_another_code_is_set_aside(tmp_path, monkeypatch):
    """The stack's file holds the package's source digest in its key: a changed code trains the stack afresh."""
    import mqarkit.gpu.frontier.runner as runner

    monkeypatch.setenv("MQARKIT_CHECKPOINT_SECONDS", "0")
    out = tmp_path / "r.jsonl"
    with pytest.raises(Stop):
        run(get_preset("tiny", **SWEEP), out, "cpu", log=lambda s: None, observers=[StopAfter(2)])
    monkeypatch.setattr(runner, "source_digest", lambda: "another code")
    lines = []
    assert run(get_preset("tiny", **SWEEP), out, "cpu", log=lines.append) == 2
    assert {r["resumed_from_epoch"] for r in read_records(out)} == {None}
    assert sum("not used" in line for line in lines) == 1
    assert [p.suffix for p in stacks_folder(out).iterdir()] == [".unused"]  # kept; the folder stays with it


def test_remove_deletes_the_file_and_the_empty_folder(tmp_path):
    a, b = StackCheckpoint(tmp_path / "s", "a", "k", seconds=0), StackCheckpoint(tmp_path / "s", "b", "k", seconds=0)
    a.save({"epoch": 1})
    b.save({"epoch": 1})
    a.remove()
    assert (tmp_path / "s").exists()
    b.remove()
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("text", ["-1", "soon", "inf", "nan"])
def test_bad_seconds_are_refused(monkeypatch, text):
    monkeypatch.setenv("MQARKIT_CHECKPOINT_SECONDS", text)
    with pytest.raises(ValueError, match="MQARKIT_CHECKPOINT_SECONDS"):
        checkpoint_seconds()
    with pytest.raises(ValueError, match="seconds=-2"):
        StackCheckpoint("x", "k", "key", seconds=-2)


@pytest.mark.gpu
def test_a_stopped_stack_continues_to_the_same_records_on_cuda(tmp_path):
    """On CUDA (compiled, CUDA graphs) in deterministic mode, in a fresh process (cuBLAS reads its workspace setting
    when CUDA starts): the restored weights, moments and generator feed the graphed steps."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    code = (
        "from tests.frontier.test_stack_checkpoints import compare_stopped_and_whole as c; "
        f"c({str(tmp_path)!r}, 'cuda', 'attention', True); print('ok')"
    )
    env = {**os.environ, "MQARKIT_CHECKPOINT_SECONDS": "0", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout[-2000:] + out.stderr[-3000:]
