"""The cosine schedule's two forms (CPU): at every step (the default) and held within each epoch (the reference
harness's ``CosineAnnealingLR``, stepped after each epoch), chosen by a sweep's ``lr_schedule``."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from mqarkit.gpu.frontier import get_preset, read_records, run_sweeps
from mqarkit.gpu.frontier import train as train_module
from mqarkit.gpu.frontier.sweep_file import SweepFileError, parse_sweeps
from mqarkit.gpu.frontier.train import lr_factor, train_stack


def test_the_step_form_follows_the_cosine_at_every_step():
    assert lr_factor("step", step=0, total_steps=8, epoch=0, epochs=2) == 1.0
    assert lr_factor("step", step=4, total_steps=8, epoch=1, epochs=2) == 0.5 * (1 + math.cos(math.pi / 2))
    assert lr_factor("step", step=3, total_steps=8, epoch=0, epochs=2) == 0.5 * (1 + math.cos(math.pi * 3 / 8))
    # bit for bit the factor every earlier record was trained with, 0.5 * (1 + cos(π · step / total_steps))
    for step in range(1000):
        before = 0.5 * (1 + math.cos(math.pi * step / 997))
        assert lr_factor("step", step=step, total_steps=997, epoch=0, epochs=1) == before


def test_the_epoch_form_holds_the_epochs_starting_value():
    # torch's CosineAnnealingLR(T_max = epochs, eta_min = 0) stepped once per epoch gives lr_0 * ½(1 + cos(π e/E))
    for step in range(4):
        assert lr_factor("epoch", step=step, total_steps=8, epoch=0, epochs=2) == 1.0
    for step in range(4, 8):
        assert lr_factor("epoch", step=step, total_steps=8, epoch=1, epochs=2) == 0.5 * (1 + math.cos(math.pi / 2))


def test_an_unknown_schedule_is_refused_naming_the_parameter():
    with pytest.raises(ValueError, match=r"schedule='cosine': needs one of step, epoch"):
        lr_factor("cosine", step=0, total_steps=1, epoch=0, epochs=1)
    with pytest.raises(ValueError, match=r"schedule='cosine': needs one of step, epoch"):
        train_stack(None, [1e-3], [object()], [object()], epochs=1, generator=None, schedule="cosine")
    (sweep,) = get_preset("tiny", epochs=1, families=("based",))
    with pytest.raises(ValueError, match=r"lr_schedule='cosine': needs one of step, epoch"):
        replace(sweep, lr_schedule="cosine").validate()


def test_a_sweep_file_takes_the_field_and_refuses_a_wrong_value():
    text = """
name = "s"
vocab_size = 64
epochs = 1
lrs = [0.01]
batch_size = 8
test_batch_size = 8
lr_schedule = "{}"
[[train]]
seq_len = 16
num_kv_pairs = 2
num_examples = 16
[[test]]
seq_len = 16
num_kv_pairs = 2
num_examples = 8
[[models]]
family = "based"
d_model = 16
feature_dim = 4
"""
    (sweep,) = parse_sweeps(text.format("epoch"))
    assert sweep.lr_schedule == "epoch"
    assert parse_sweeps(text.replace('lr_schedule = "{}"\n', ""))[0].lr_schedule == "step"  # the default
    with pytest.raises(SweepFileError, match=r"lr_schedule='per-epoch': needs one of step, epoch"):
        parse_sweeps(text.format("per-epoch"))


def test_a_sweep_under_the_epoch_form_trains_with_it_and_records_it(tmp_path, monkeypatch):
    seen = []  # (schedule, epoch, factor) of every step
    real = train_module.lr_factor

    def spy(schedule, *, step, total_steps, epoch, epochs):
        factor = real(schedule, step=step, total_steps=total_steps, epoch=epoch, epochs=epochs)
        seen.append((schedule, epoch, factor))
        return factor

    monkeypatch.setattr(train_module, "lr_factor", spy)
    (sweep,) = get_preset("tiny", epochs=2, families=("based",), example_scale=0.25)
    sweep = replace(sweep, lr_schedule="epoch")
    out = tmp_path / "r.jsonl"
    assert run_sweeps([sweep], out, "cpu", log=lambda s: None) == len(sweep.runs())
    assert {r["lr_schedule"] for r in read_records(out)} == {"epoch"}
    assert {s for s, _, _ in seen} == {"epoch"} and {e for _, e, _ in seen} == {0, 1}
    for epoch in (0, 1):
        assert {f for _, e, f in seen if e == epoch} == {0.5 * (1 + math.cos(math.pi * epoch / 2))}
