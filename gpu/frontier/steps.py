"""One training step of a stack: the batch's data on the device, the loss at the query rows, micro-batching."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mqarkit.gpu.frontier.data import IGNORE_INDEX, Segment
from mqarkit.gpu.frontier.kernels.fused_head import fused_linear_cross_entropy
from mqarkit.gpu.frontier.model import StackedHybrid
from mqarkit.gpu.frontier.ops import training_autocast
from mqarkit.gpu.frontier.optim import StackedAdamW


@dataclass
class SegmentData:
    """A generated segment on the device, with its labelled positions precomputed."""

    segment: Segment
    inputs: torch.Tensor  # (n, N) int64
    labels: torch.Tensor  # (n, N) int64, -100 off the query positions
    qpos: torch.Tensor = field(init=False)  # (n, D) int64 positions of the labels, ascending
    targets: torch.Tensor = field(init=False)  # (n, D) int64

    def __post_init__(self) -> None:
        n, d = self.inputs.shape[0], self.segment.num_kv_pairs
        mask = self.labels != IGNORE_INDEX
        counts = mask.sum(1)
        if not bool((counts == d).all()):
            raise ValueError(f"labels: every example needs exactly num_kv_pairs={d} labelled positions")
        self.qpos = mask.nonzero()[:, 1].reshape(n, d)
        self.targets = self.labels.gather(1, self.qpos)


DEFAULT_BUDGET = 2**30  # elements of one (R, b, [H,] N, N) intermediate: 2 GiB in bf16


def micro_batch(model: StackedHybrid, batch: int, seq_len: int, budget: int) -> int:
    """Largest micro-batch whose mixers' largest intermediates (per example: ``intermediate_elements``, summed over
    the model's mixers: under ``layers = "mixer"`` both blocks' are held for the backward at once) stay within
    ``budget`` elements."""
    per_example = sum(mixer.intermediate_elements(seq_len) for mixer in model.mixers().values())
    return max(1, min(batch, budget // per_example))


def query_loss(
    model: StackedHybrid,
    x: torch.Tensor,
    qpos: torch.Tensor,
    targets: torch.Tensor,
    total: int,
    loss_sums: torch.Tensor | None = None,
):
    """Sum over runs of (summed CE at the query positions) / ``total``; ``x (b, N)``, ``qpos, targets (b, D)``.

    The LM head and the cross-entropy are one fused computation that never writes the ``(R, b·D, c)`` logits on CUDA
    (:func:`~mqarkit.gpu.frontier.kernels.fused_head.fused_linear_cross_entropy`; its naive reference elsewhere).
    ``loss_sums (R,)`` float32, if given: each run's summed CE (not divided by ``total``) is added to it in place.
    """
    hidden = model.hidden_at(x, qpos)
    return fused_linear_cross_entropy(hidden, model.head_weight(), targets.reshape(-1), per_run_sums=loss_sums) / total


def accumulate_gradients(
    model: StackedHybrid, seg: SegmentData, rows: torch.Tensor, budget: int, loss_sums: torch.Tensor | None = None
) -> None:
    """Forward and backward of the examples ``rows (b,)`` of ``seg`` (micro-batched to fit ``budget``) into ``.grad``;
    each run's summed CE over the batch's labels is added to ``loss_sums (R,)`` when given (on the device, no sync).

    bf16 autocast on CUDA, with its weight-cast cache off (required inside CUDA-graph capture; each weight is cast
    once per forward anyway).
    """
    device = seg.inputs.device
    total = rows.numel() * seg.segment.num_kv_pairs
    mb = micro_batch(model, rows.numel(), seg.inputs.shape[1], budget)
    for start in range(0, rows.numel(), mb):
        part = rows[start : start + mb]
        with training_autocast(device):
            loss = query_loss(model, seg.inputs[part], seg.qpos[part], seg.targets[part], total, loss_sums)
        loss.backward()


def train_step(
    model: StackedHybrid,
    opt: StackedAdamW,
    seg: SegmentData,
    rows: torch.Tensor,
    factor: float,
    budget: int,
    loss_sums: torch.Tensor | None = None,
) -> None:
    """One optimiser step on the examples ``rows (b,)`` of ``seg``, eagerly (``opt.step`` clears the gradients);
    ``loss_sums``: see :func:`accumulate_gradients`."""
    accumulate_gradients(model, seg, rows, budget, loss_sums)
    opt.step(factor)
