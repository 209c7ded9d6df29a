"""Training a stack of runs: shared GPU-resident batches, stacked AdamW, cosine schedule, early stopping.

One step feeds the same batch to all ``R`` runs of a :class:`~mqarkit.gpu.frontier.model.StackedHybrid`; the loss is the
sum over runs of each run's mean cross-entropy, so each run's gradient is exactly its own. Loss and accuracy are
computed only at the labelled (query) positions: the model computes its hidden states there only (``(R, M, d)``, ``M =
B·D``, :meth:`~mqarkit.gpu.frontier.model.StackedHybrid.hidden_at`, which also computes layer 1 at those rows only), so
the ``(R, M, c)`` logits replace the ``(R, B·N, c)`` ones of the reference — the same loss, since every other position
has label ``-100``, at ``D/N`` of the head's cost.

Optimiser: AdamW (β = (0.9, 0.999), ε = 1e-8, decoupled weight decay 0.1 on every parameter, like ``torch.optim.AdamW``
over ``model.parameters()``), with a per-run learning rate: each stacked parameter has a learning-rate tensor of its
own shape (run ``r``'s lr, times the padding mask), and the update is one fused kernel per parameter on CUDA
(:mod:`mqarkit.gpu.frontier.kernels.fused_adamw`; its reference, a dozen ``torch._foreach_*`` ops over all parameters,
elsewhere). Schedule: cosine from the base lr to 0 over all steps (no warm-up; ``schedule = "step"``, the default),
or, with ``schedule = "epoch"``, held within each epoch at its value at the epoch's start, as the reference harness
(Zoology's ``Trainer``) steps its ``CosineAnnealingLR`` once per epoch (:func:`lr_factor`). Early stopping per run:
after each epoch, a run whose overall test accuracy is ≥ ``early_stop`` is frozen (lr 0) and its result kept; the
reference stops on the mean over test examples of each example's accuracy instead, not on the accuracy over all
queries.

Divergence: after each epoch (when the per-run loss sums are read, without a host sync per step), a run whose epoch
loss is not finite is frozen and marked diverged (``StackResult.diverged_at``); its stack-mates train on (the runs of a
stack never mix: their losses are summed, so each run's gradient is its own). Its kept results are those of its last
finite epoch; the records say ``diverged`` and the plots and tables leave it out of a configuration's choice.

On CUDA, :func:`train_stack` replays each full-batch step as one CUDA graph (:mod:`mqarkit.gpu.frontier.cuda_graphs`);
the graphed step is :func:`train_step`'s computation.

Batches: each batch comes from one training segment (one ``(N, D)``); every epoch the rows of every segment and the
order of all batches are reshuffled with the harness's ``torch.Generator`` (:func:`epoch_plan`).

Resuming: with a ``checkpoint`` (:mod:`mqarkit.gpu.frontier.checkpoints`), the state after an epoch is saved (at most
every ``checkpoint.seconds``), and a stack that finds a saved state continues from it: the same weights, optimiser
moments, step count (so the same schedule), data generator (so the same batches) and results so far.
``StackResult.resumed_from_epoch`` says from which epoch, ``devices`` which devices trained it.

Monitoring: each run's training loss of an epoch is the mean cross-entropy over every label the epoch trained on,
accumulated on the device (``loss_sums (R,)``, added to in place by every step, graphed or not) and read once per
epoch, with the test accuracy that already synchronises there: no host sync per step. After each epoch ``on_epoch``
gets an :class:`EpochReport` (loss, accuracy per test segment and overall, which runs trained).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from mqarkit.gpu.frontier.checkpoints import StackCheckpoint
from mqarkit.gpu.frontier.cuda_graphs import GraphedSteps, graphs_enabled
from mqarkit.gpu.frontier.kernels.fused_head import fused_linear_argmax
from mqarkit.gpu.frontier.model import StackedHybrid
from mqarkit.gpu.frontier.ops import training_autocast
from mqarkit.gpu.frontier.optim import StackedAdamW
from mqarkit.gpu.frontier.steps import DEFAULT_BUDGET, SegmentData, micro_batch, train_step
from mqarkit.gpu.frontier.sweep import check_lr_schedule


def training_step(
    model: StackedHybrid, opt: StackedAdamW, *, batch_size: int, budget: int, loss_sums: torch.Tensor | None = None
) -> Callable[[SegmentData, torch.Tensor, float], None]:
    """The harness's step ``(segment, rows, schedule factor) -> None``: graphed on CUDA where the family allows it
    (``graphable``), else :func:`train_step`; each step adds its per-run summed losses to ``loss_sums`` if given."""
    if graphs_enabled(opt.params[0].device) and model.mixer.graphable:
        return GraphedSteps(model, opt, batch_size=batch_size, budget=budget, loss_sums=loss_sums).step
    return lambda seg, rows, factor: train_step(model, opt, seg, rows, factor, budget, loss_sums)


def evaluate(model: StackedHybrid, tests: list[SegmentData], *, batch: int, budget: int):
    """Per run: correct and total counts per test segment: ``(R, S)`` int64 each.

    For a family that runs compiled, the hidden states are computed with autograd recording, as in training, and the
    recorded graph is dropped with them: on CUDA that calls the function training compiled (grad mode is part of what
    it is compiled for) instead of compiling an inference variant per stack. A family whose
    ``evaluates_with_training_graph`` is off, and a plain module (``compilable`` False), run in eval mode without
    autograd instead. The argmax runs without autograd.
    """
    device = tests[0].inputs.device
    reuse_training_graph = model.mixer.compilable and model.mixer.evaluates_with_training_graph
    was_training = model.training
    model.train(reuse_training_graph and was_training)
    correct = torch.zeros(model.runs, len(tests), dtype=torch.long, device=device)
    totals = torch.zeros(len(tests), dtype=torch.long)
    for s, seg in enumerate(tests):
        n = seg.inputs.shape[1]
        mb = micro_batch(model, batch, n, budget)
        for start in range(0, seg.inputs.shape[0], mb):
            x, qpos, tgt = (t[start : start + mb] for t in (seg.inputs, seg.qpos, seg.targets))
            # the autocast state of training (its weight-cast cache off), which the compiled function is guarded on
            with torch.set_grad_enabled(reuse_training_graph), training_autocast(device):
                hidden = model.hidden_at(x, qpos)  # (R, b·D, d)
            with training_autocast(device):
                pred = fused_linear_argmax(hidden, model.head_weight())  # (R, b·D) int64, computed without autograd
            correct[:, s] += (pred == tgt.reshape(1, -1)).sum(1)
        totals[s] = seg.qpos.numel()
    model.train(was_training)
    return correct.cpu(), totals


@dataclass(frozen=True)
class EpochReport:
    """What one epoch of a stack gave, per run: the mean training loss over the epoch's labels, the test accuracy per
    test segment and overall, and whether the run trained this epoch (False: frozen by an earlier early stop; its
    numbers are then those of its frozen weights)."""

    epoch: int  # 1-based
    epochs: int  # the most the stack trains
    loss: list[float]  # (R,)
    accuracy: list[list[float]]  # (R, S)
    overall: list[float]  # (R,)
    trained: list[bool]  # (R,)


@dataclass
class StackResult:
    """Per run: test accuracy per segment at the end (or at the early stop), epochs trained, accuracy and training
    loss histories."""

    accuracy: list[list[float]]  # (R, S)
    overall: list[float]  # (R,)
    epochs: list[int]  # (R,)
    history: list[list[float]]  # (R, epochs) overall accuracy after each epoch
    train_seconds: float
    steps: int
    loss_history: list[list[float]] = field(default_factory=list)  # (R, epochs) mean training loss of each epoch
    diverged_at: list[int | None] = field(default_factory=list)  # (R,) the epoch whose loss was not finite, or None
    resumed_from_epoch: int | None = None  # the epochs a saved state held when this call started (None: none saved)
    devices: list[str] = field(default_factory=list)  # the devices that trained it, in order (more than one: resumed)


RESULT_FIELDS = ("accuracy", "overall", "epochs", "history", "loss_history", "diverged_at")  # what a checkpoint keeps


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def lr_factor(schedule: str, *, step: int, total_steps: int, epoch: int, epochs: int) -> float:
    """The cosine schedule's factor on each run's base learning rate, ``½(1 + cos(π x))``: ``x = step/total_steps``
    under ``"step"`` (every step, 0-based), ``x = epoch/epochs`` under ``"epoch"`` (the epoch's start, 0-based: the
    rate the reference's ``CosineAnnealingLR`` holds through that epoch)."""
    check_lr_schedule(schedule, "schedule")
    # π·step/total_steps in this order: the factors of every record trained before the choice, bit for bit
    angle = math.pi * step / total_steps if schedule == "step" else math.pi * epoch / epochs
    return 0.5 * (1 + math.cos(angle))


def epoch_plan(train: list[SegmentData], batch_size: int, generator: torch.Generator) -> list[tuple[int, torch.Tensor]]:
    """One epoch's batches in the order training takes them: ``(segment index, rows (b,))`` on the data's device.

    Each segment's rows are permuted and cut into batches of ``batch_size`` (the last one partial), then the batches of
    all segments are shuffled together, both with ``generator`` (the second through a CPU generator seeded from it)."""
    device = train[0].inputs.device
    plan = []
    for si, seg in enumerate(train):
        perm = torch.randperm(seg.inputs.shape[0], generator=generator, device=generator.device).to(device)
        plan += [(si, perm[i : i + batch_size]) for i in range(0, perm.numel(), batch_size)]
    order = torch.randperm(
        len(plan),
        generator=torch.Generator().manual_seed(
            int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
        ),
    )
    return [plan[j] for j in order.tolist()]


def train_stack(
    model: StackedHybrid,
    lrs: list[float],
    train: list[SegmentData],
    tests: list[SegmentData],
    *,
    epochs: int,
    generator: torch.Generator,
    batch_size: int = 256,
    test_batch_size: int = 256,
    early_stop: float = 0.99,
    schedule: str = "step",
    weight_decay: float = 0.1,
    budget: int = DEFAULT_BUDGET,
    on_epoch: Callable[[EpochReport], None] | None = None,
    checkpoint: StackCheckpoint | None = None,
) -> StackResult:
    """Train all runs of ``model`` together for up to ``epochs`` epochs; see the module docstring."""
    if epochs < 1:
        raise ValueError(f"epochs={epochs}: needs epochs >= 1")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: needs batch_size >= 1")
    check_lr_schedule(schedule, "schedule")
    if not train or not tests:
        raise ValueError("train/tests: needs at least one training and one test segment")
    device = train[0].inputs.device
    opt = StackedAdamW(model, torch.tensor(lrs), weight_decay=weight_decay)
    runs = model.runs
    loss_sums = torch.zeros(runs, dtype=torch.float32, device=device)  # (R,) summed CE of the epoch so far
    labels_per_epoch = sum(s.qpos.numel() for s in train)
    active = torch.ones(runs, dtype=torch.bool)
    steps_per_epoch = sum(math.ceil(s.inputs.shape[0] / batch_size) for s in train)
    total_steps = epochs * steps_per_epoch
    result = StackResult(
        accuracy=[[0.0] * len(tests)] * runs,
        overall=[0.0] * runs,
        epochs=[0] * runs,
        history=[[] for _ in range(runs)],
        train_seconds=0.0,
        steps=0,
        loss_history=[[] for _ in range(runs)],
        diverged_at=[None] * runs,
    )
    start, step, seconds_before = 0, 0, 0.0
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:  # before the step is built: a CUDA graph captures the tensors restored here in place
        _restore(saved, model, opt, generator, active, result)
        start, step, seconds_before = saved["epoch"], saved["step"], saved["train_seconds"]
        result.resumed_from_epoch = start
        opt.set_active(active.to(device))
    result.devices.append(_device_name(device))
    take_step = training_step(model, opt, batch_size=batch_size, budget=budget, loss_sums=loss_sums)
    t0 = time.perf_counter()
    for epoch in range(start, epochs):
        if not bool(active.any()):  # a saved state whose runs had all stopped
            break
        for si, rows in epoch_plan(train, batch_size, generator):
            take_step(
                train[si], rows, lr_factor(schedule, step=step, total_steps=total_steps, epoch=epoch, epochs=epochs)
            )
            step += 1
        correct, totals = evaluate(model, tests, batch=test_batch_size, budget=budget)
        overall = (correct.sum(1).double() / totals.sum()).tolist()
        acc = (correct.double() / totals.double()).tolist()
        loss = (loss_sums.double() / labels_per_epoch).tolist()  # read once per epoch (evaluate has synchronised)
        loss_sums.zero_()  # in place: a CUDA graph holds its address
        trained = active.tolist()
        for r in range(runs):
            if active[r] and not math.isfinite(loss[r]):  # diverged: frozen, its results those of its last finite epoch
                result.diverged_at[r] = epoch + 1
                active[r] = False
            elif active[r]:
                result.accuracy[r], result.overall[r], result.epochs[r] = acc[r], overall[r], epoch + 1
                result.history[r].append(overall[r])
                result.loss_history[r].append(loss[r])
                if overall[r] >= early_stop:
                    active[r] = False
        if checkpoint is not None and epoch + 1 < epochs and bool(active.any()) and checkpoint.due():
            seconds = seconds_before + time.perf_counter() - t0  # evaluate has synchronised
            checkpoint.save(_saved_state(epoch + 1, step, seconds, model, opt, generator, active, result))
        if on_epoch is not None:
            on_epoch(EpochReport(epoch + 1, epochs, loss, acc, overall, trained))
        if not bool(active.any()):
            break
        opt.set_active(active.to(device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    result.train_seconds = seconds_before + time.perf_counter() - t0
    result.steps = step
    return result


def _saved_state(epoch, step, seconds, model, opt, generator, active, result) -> dict:
    """What :func:`_restore` needs to continue after ``epoch`` epochs (tensors as they are; loaded onto the CPU)."""
    return {
        "epoch": epoch,
        "step": step,
        "train_seconds": seconds,
        "model": model.state_dict(),
        "adam": {"t": opt.t, "m": opt.m, "v": opt.v},
        "generator": generator.get_state(),
        "active": active.clone(),
        "result": {name: getattr(result, name) for name in RESULT_FIELDS},
        "devices": list(result.devices),
    }


@torch.no_grad()
def _restore(saved: dict, model, opt, generator, active, result) -> None:
    """Copy a saved state into the stack's own tensors, in place (their addresses stay: a CUDA graph may hold them)."""
    model.load_state_dict(saved["model"])
    opt.t.copy_(saved["adam"]["t"])
    for mine, theirs in zip(opt.m + opt.v, saved["adam"]["m"] + saved["adam"]["v"], strict=True):
        mine.copy_(theirs)
    generator.set_state(saved["generator"])
    active.copy_(saved["active"])
    for name in RESULT_FIELDS:
        setattr(result, name, saved["result"][name])
    result.devices[:] = saved["devices"]
