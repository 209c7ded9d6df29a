"""A stack that runs out of device memory is split into two stacks of half its runs, trained next, down to one run a
stack; each run's record is the one it gets in the whole stack (CPU, the error forced by a stand-in for the training
of stacks above a size)."""

from __future__ import annotations

import pytest
import torch

from mqarkit.gpu.frontier import get_preset, read_records, run_sweeps
from mqarkit.gpu.frontier import train as train_module
from mqarkit.gpu.frontier.checkpoints import stacks_folder
from mqarkit.gpu.frontier.observers import StackObserver
from mqarkit.gpu.frontier.runner import split_stack
from mqarkit.gpu.frontier.sweep import groups
from mqarkit.tolerances import assert_close

MESSAGE = "CUDA out of memory. Tried to allocate 3.98 GiB. GPU 0 has 578.19 MiB free. Including non-PyTorch memory"
REASON = "CUDA out of memory. Tried to allocate 3.98 GiB. GPU 0 has 578.19 MiB free"  # up to "Including"


def fits_only(monkeypatch, most_runs: int, families: tuple[str, ...] = ("based",)) -> None:
    """Stacks of ``families`` with more than ``most_runs`` runs raise torch's out-of-memory error."""
    real = train_module.train_stack

    def train_stack(model, *args, **kwargs):
        if model.family in families and model.runs > most_runs:
            raise torch.OutOfMemoryError(MESSAGE)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(train_module, "train_stack", train_stack)


class Events(StackObserver):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def planned(self, stacks) -> None:
        self.events.append(("planned", [len(g) for _, g in stacks]))

    def stack_started(self, sweep, group) -> None:
        self.events.append(("started", len(group)))

    def stack_failed(self, sweep, group, reason) -> None:
        self.events.append(("failed", len(group), reason))


def test_split_stack_halves_a_stack_in_order_the_first_half_larger():
    (sweep,) = get_preset("tiny", epochs=1, families=("based",))
    (group,) = groups(sweep, None)
    assert len(group) == 4
    assert split_stack(group) == [group[:2], group[2:]]
    assert split_stack(group[:3]) == [group[:2], group[2:3]]
    with pytest.raises(ValueError, match="split_stack: needs a stack of at least 2 runs, got 1"):
        split_stack(group[:1])


def test_a_stack_too_large_trains_as_halves_and_each_run_s_record_is_its_record_in_the_whole(tmp_path, monkeypatch):
    sweeps = get_preset("tiny", epochs=2, families=("based",))  # one stack of 4 runs (feature_dim 4, 4, 8, 8)
    whole = tmp_path / "whole.jsonl"
    assert run_sweeps(sweeps, whole, "cpu", log=lambda s: None) == 4
    fits_only(monkeypatch, 2)
    split, events, lines = tmp_path / "split.jsonl", Events(), []
    assert run_sweeps(sweeps, split, "cpu", log=lines.append, observers=[events]) == 4  # nothing left to do
    said = [line for line in lines if "out of device memory" in line]
    assert said == [
        f"[tiny] based d=32: out of device memory ({REASON}); its 4 runs split into stacks of 2 and 2, trained next"
    ]
    assert events.events == [
        ("planned", [4]),
        ("started", 4),
        ("failed", 4, REASON),  # StackObserver.stack_split's default: the whole failed, then its parts planned
        ("planned", [2, 2]),
        ("started", 2),
        ("started", 2),
    ]
    by_id = {r["run_id"]: r for r in read_records(whole)}
    records = read_records(split)
    assert sorted(r["run_id"] for r in records) == sorted(by_id)
    for r in records:
        w = by_id[r["run_id"]]
        assert r["stack_size"] == 2 and w["stack_size"] == 4 and r["status"] == w["status"] == "finished"
        assert r["state_numbers"] == w["state_numbers"]
        assert_close(r["loss_history"], w["loss_history"], dtype="float32", context=r["run_id"])
        slices = [a["accuracy"] for a in r["accuracy"]]
        assert_close(slices, [a["accuracy"] for a in w["accuracy"]], dtype="float32", context=r["run_id"])
    assert not stacks_folder(split).exists()  # every stack's saved state removed with its records


def test_a_run_alone_that_runs_out_is_left_to_do_as_before(tmp_path, monkeypatch):
    from mqarkit.gpu.frontier.runner import StacksOutOfMemory

    fits_only(monkeypatch, 0)
    sweeps = get_preset("tiny", epochs=1, families=("based",))
    lines: list[str] = []
    with pytest.raises(StacksOutOfMemory) as failed:
        run_sweeps(sweeps, tmp_path / "r.jsonl", "cpu", log=lines.append)
    assert failed.value.written == 0 and len(failed.value.stacks) == 4  # 4 -> 2 + 2 -> four stacks of one, each out
    assert sum("split into stacks of 2 and 2" in line for line in lines) == 1
    assert sum("split into stacks of 1 and 1" in line for line in lines) == 2


def test_a_tracked_split_stack_leaves_each_run_s_epochs_once_in_its_event_file(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from mqarkit.gpu.frontier.tracking import Tracking

    fits_only(monkeypatch, 1, families=("attention",))
    sweeps = get_preset("tiny", epochs=2, families=("attention",))  # a stack of 2 runs: split into two of 1
    out = tmp_path / "r.jsonl"
    tracking = Tracking("tensorboard", str(tmp_path / "tb"))
    assert run_sweeps(sweeps, out, "cpu", log=lambda s: None, tracking=tracking) == 2
    for rec in read_records(out):
        events = EventAccumulator(str(tmp_path / "tb" / rec["run_id"]))
        events.Reload()
        losses = [(e.step, e.value) for e in events.Scalars("train/loss")]
        assert [step for step, _ in losses] == [1, 2] and rec["stack_size"] == 1
        assert_close([v for _, v in losses], rec["loss_history"], dtype="float32", context=rec["run_id"])
