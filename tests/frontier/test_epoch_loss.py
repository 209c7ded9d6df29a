"""The per-run training loss: summed inside the step into a device tensor, read once per epoch (CPU, float32)."""

from __future__ import annotations

import pytest
import torch

from mqarkit.gpu.frontier import get_preset, read_records, run_sweeps
from mqarkit.gpu.frontier.config import ModelConfig
from mqarkit.gpu.frontier.data import Segment, mqar_batch
from mqarkit.gpu.frontier.kernels.fused_head import fused_linear_cross_entropy
from mqarkit.gpu.frontier.model import StackedHybrid
from mqarkit.gpu.frontier.steps import SegmentData
from mqarkit.gpu.frontier.train import EpochReport, train_stack
from mqarkit.tolerances import assert_close


def _head_inputs(runs: int = 3, rows: int = 5, width: int = 4, vocab: int = 7):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(runs, rows, width, generator=g, requires_grad=True)
    w = torch.randn(runs, width, vocab, generator=g, requires_grad=True)
    t = torch.randint(0, vocab, (rows,), generator=g)
    return h, w, t


def test_per_run_sums_are_each_runs_cross_entropy_and_change_nothing_else():
    h, w, t = _head_inputs()
    sums = torch.full((3,), 0.5)  # added to, not overwritten
    value = fused_linear_cross_entropy(h, w, t, per_run_sums=sums)
    value.backward()
    grads = (h.grad.clone(), w.grad.clone())
    h.grad = w.grad = None
    plain = fused_linear_cross_entropy(h, w, t)
    plain.backward()
    assert torch.equal(value, plain) and torch.equal(grads[0], h.grad) and torch.equal(grads[1], w.grad)
    assert not sums.requires_grad
    for r in range(3):
        expected = torch.nn.functional.cross_entropy(h[r] @ w[r], t, reduction="sum") + 0.5
        assert_close(sums[r], expected.detach(), dtype="float32", context=f"run {r}")


def test_per_run_sums_bad_input():
    h, w, t = _head_inputs()
    with pytest.raises(ValueError, match="per_run_sums: needs a floating \\(R,\\) tensor with R=3"):
        fused_linear_cross_entropy(h, w, t, per_run_sums=torch.zeros(2))
    with pytest.raises(ValueError, match="per_run_sums"):
        fused_linear_cross_entropy(h, w, t, per_run_sums=torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="per_run_sums"):
        fused_linear_cross_entropy(h, w, t, per_run_sums=[0.0, 0.0, 0.0])


def _segment(seq_len: int, pairs: int, n: int, seed: int) -> SegmentData:
    return SegmentData(
        Segment(seq_len, pairs, n), *mqar_batch(64, seq_len, pairs, n, generator=torch.Generator().manual_seed(seed))
    )


def test_epoch_loss_is_the_mean_cross_entropy_over_the_epochs_labels():
    """With a learning rate of 1e-20 (the optimiser takes only rates > 0) the weights do not move at float32's
    resolution, so an epoch's loss is the initial model's mean cross-entropy over every training label, whatever the
    batch order: computed here directly, per run."""
    cfgs = [ModelConfig("based", 16, vocab_size=64, max_len=32, feature_dim=f) for f in (4, 8)]
    model = StackedHybrid(cfgs, [1, 2])
    train = [_segment(16, 2, 24, 0), _segment(32, 4, 10, 1)]  # 10 rows: a partial last batch of 8
    tests = [_segment(16, 2, 8, 2)]
    reports: list[EpochReport] = []
    result = train_stack(
        model, [1e-20, 1e-20], train, tests, epochs=2, generator=torch.Generator().manual_seed(3), batch_size=8,
        weight_decay=0.0, on_epoch=reports.append,
    )  # fmt: skip
    with torch.no_grad():
        summed = torch.zeros(2, dtype=torch.float64)
        for seg in train:
            hidden = model.hidden_at(seg.inputs, seg.qpos)  # (R, n·D, d)
            logits = torch.bmm(hidden, model.head_weight())
            for r in range(2):
                ce = torch.nn.functional.cross_entropy(logits[r], seg.targets.reshape(-1), reduction="sum")
                summed[r] += ce.double()
    expected = (summed / sum(seg.qpos.numel() for seg in train)).tolist()
    assert [rep.epoch for rep in reports] == [1, 2] and all(rep.epochs == 2 for rep in reports)
    assert all(rep.trained == [True, True] for rep in reports)
    for rep in reports:
        assert_close(torch.tensor(rep.loss), torch.tensor(expected), dtype="float32", context=f"epoch {rep.epoch}")
        assert len(rep.accuracy) == 2 and len(rep.accuracy[0]) == 1
    assert result.loss_history == [[rep.loss[r] for rep in reports] for r in range(2)]


def test_records_carry_the_loss_history(tmp_path):
    out = tmp_path / "r.jsonl"
    assert run_sweeps(get_preset("tiny", epochs=2, families=("attention",)), out, "cpu", log=lambda s: None) == 2
    for rec in read_records(out):
        assert len(rec["loss_history"]) == rec["epochs_trained"] == len(rec["history"])
        assert all(0 < loss < 10 for loss in rec["loss_history"])  # cross-entropy over 64 tokens starts near ln 64


@pytest.mark.parametrize(
    ("family", "knobs", "records"),
    [
        ("based", {"feature_dim": 4}, True),
        ("delta_net", {"heads": 2, "head_dim": 4}, False),
        ("mamba", {"d_state": 4}, False),
    ],
)
def test_evaluation_records_autograd_only_where_the_family_reuses_its_training_graph(
    family, knobs, records, monkeypatch
):
    """A compiled family evaluates with autograd on (the function training compiled), unless it says otherwise
    (``evaluates_with_training_graph``): the delta rules, compiled in their trial, and Mamba evaluate without it."""
    from mqarkit.gpu.frontier.train import evaluate

    monkeypatch.setenv("MQARKIT_COMPILE_DELTA_RULE", "1")  # DeltaNet compilable, as in its trial
    model = StackedHybrid([ModelConfig(family, 16, vocab_size=64, max_len=32, **knobs)], [1])
    assert model.mixer.compilable
    seen = []
    real = model.mixer.forward_at
    monkeypatch.setattr(model.mixer, "forward_at", lambda *a: seen.append(torch.is_grad_enabled()) or real(*a))
    correct, totals = evaluate(model, [_segment(16, 2, 8, 2)], batch=8, budget=2**20)
    assert seen == [records] and int(totals[0]) == 16 and model.training  # the training mode is given back
