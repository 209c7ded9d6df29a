"""Training a stack of runs: shared GPU-resident batches, stacked AdamW, cosine schedule, early stopping.

One step feeds the same batch to all ``R`` runs of a :class:`~mqarkit.gpu.stacked.StackedHybrid`; the loss is the sum
over runs of each run's mean cross-entropy, so each run's gradient is exactly its own. Loss and accuracy are computed
only at the labelled (query) positions: the model computes its hidden states there only (``(R, M, d)``, ``M = B·D``,
:meth:`~mqarkit.gpu.stacked.StackedHybrid.hidden_at`, which also computes layer 1 at those rows only), so the
``(R, M, c)`` logits replace the ``(R, B·N, c)`` ones of the reference — the same loss, since every other position has
label ``-100``, at ``D/N`` of the head's cost.

Optimiser: AdamW (β = (0.9, 0.999), ε = 1e-8, decoupled weight decay 0.1 on every parameter, like ``torch.optim.AdamW``
over ``model.parameters()``), with a per-run learning rate: each stacked parameter has a learning-rate tensor of its
own shape (run ``r``'s lr, times the padding mask), and the update is one fused kernel per parameter on CUDA
(:mod:`mqarkit.gpu.fused_adamw`; its reference, a dozen ``torch._foreach_*`` ops over all parameters, elsewhere).
Schedule: cosine from the base lr to 0 over all steps (no warm-up). Early stopping per run: after each epoch, a run
whose overall test accuracy is ≥ ``early_stop`` is frozen (lr 0) and its result kept.

On CUDA, :func:`train_stack` replays each full-batch step as one CUDA graph (:mod:`mqarkit.gpu.cuda_graphs`); the
graphed step is :func:`train_step`'s computation.

Batches: each batch comes from one training segment (one ``(N, D)``); every epoch the rows of every segment and the
order of all batches are reshuffled with the harness's ``torch.Generator``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from mqarkit.gpu.data import IGNORE_INDEX, Segment
from mqarkit.gpu.fused_adamw import adamw_fused
from mqarkit.gpu.fused_head import fused_linear_argmax, fused_linear_cross_entropy
from mqarkit.gpu.stacked import SSM_EXPAND, SSM_HEAD_DIM, StackedHybrid


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


class StackedAdamW:
    """AdamW over stacked parameters with one learning rate per run (see the module docstring).

    Every quantity that changes from step to step lives in a device tensor (the step count ``t``, the schedule factor,
    the per-run learning rates, updated in place), so one :meth:`step` can be recorded in a CUDA graph and replayed.
    """

    def __init__(
        self,
        model: StackedHybrid,
        lrs: torch.Tensor,
        *,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        if lrs.shape != (model.runs,):
            raise ValueError(f"lrs: needs shape ({model.runs},), got {tuple(lrs.shape)}")
        if not bool((lrs > 0).all()):
            raise ValueError("lrs: every learning rate must be > 0")
        self.names = [n for n, _ in model.named_parameters()]
        self.params = [p for _, p in model.named_parameters()]
        self.masks = model.gradient_masks()
        device = self.params[0].device
        self.base = lrs.to(device, torch.float32)
        self.wd, self.betas, self.eps = weight_decay, betas, eps
        self.t = torch.zeros((), dtype=torch.float64, device=device)  # steps taken (float64: exact 1 − β^t)
        self.neg_factor = torch.full((), -1.0, dtype=torch.float32, device=device)  # −(schedule factor)
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.lr_full: list[torch.Tensor] = []
        self.set_active(torch.ones(model.runs, dtype=torch.bool, device=device))

    def set_active(self, active: torch.Tensor) -> None:
        """Freeze the runs where ``active`` (R,) is False (their learning rate becomes 0), in place."""
        lr = self.base * active.to(self.base.device).float()
        fulls = []
        for name, p in zip(self.names, self.params):
            full = lr.view(-1, *([1] * (p.dim() - 1))).expand_as(p).clone()
            if name in self.masks:
                full = full * self.masks[name]
            fulls.append(full)
        if self.lr_full:
            torch._foreach_copy_(self.lr_full, fulls)
        else:
            self.lr_full = fulls

    def set_factor(self, factor: float) -> None:
        """The schedule's factor of the next step(s) (written into a device tensor)."""
        self.neg_factor.fill_(-factor)

    @torch.no_grad()
    def step(self, factor: float | None = None, *, clear_grads: bool = True) -> None:
        """One update with the learning rates scaled by ``factor`` (the schedule; None: the last one set).

        ``clear_grads=False`` leaves the gradients in place (a CUDA graph's gradients are its static buffers).
        """
        if factor is not None:
            self.set_factor(factor)
        b1, b2 = self.betas
        self.t += 1
        inv_bc1 = 1 / (1 - b1**self.t)  # bias corrections of step t (float64 0-d tensors)
        inv_sqrt_bc2 = (1 - b2**self.t).rsqrt()
        scalars = torch.stack([inv_bc1.float(), inv_sqrt_bc2.float(), self.neg_factor])  # (3,): c1, c2, −f
        grads = [p.grad for p in self.params]
        kw = {"betas": self.betas, "eps": self.eps, "weight_decay": self.wd}
        adamw_fused(self.params, grads, self.m, self.v, self.lr_full, scalars, **kw)
        if clear_grads:
            for p in self.params:
                p.grad = None

    def state_tensors(self) -> list[torch.Tensor]:
        """Everything a step changes: parameters, moments and the step count (for snapshots)."""
        return [*self.params, *self.m, *self.v, self.t]


DEFAULT_BUDGET = 2**30  # elements of one (R, b, [H,] N, N) intermediate: 2 GiB in bf16


def micro_batch(model: StackedHybrid, batch: int, seq_len: int, budget: int) -> int:
    """Largest micro-batch whose quadratic ``(R, b, [H,] N, N)`` intermediates stay within ``budget`` elements."""
    heads = (SSM_EXPAND * model.d // SSM_HEAD_DIM) if model.family == "ssm" else 1
    per_example = model.runs * heads * seq_len * seq_len
    return max(1, min(batch, budget // per_example))


def query_loss(model: StackedHybrid, x: torch.Tensor, qpos: torch.Tensor, targets: torch.Tensor, total: int):
    """Sum over runs of (summed CE at the query positions) / ``total``; ``x (b, N)``, ``qpos, targets (b, D)``.

    The LM head and the cross-entropy are one fused computation that never writes the ``(R, b·D, c)`` logits on CUDA
    (:func:`~mqarkit.gpu.fused_head.fused_linear_cross_entropy`; its naive reference elsewhere).
    """
    return fused_linear_cross_entropy(model.hidden_at(x, qpos), model.head_weight(), targets.reshape(-1)) / total


def accumulate_gradients(model: StackedHybrid, seg: SegmentData, rows: torch.Tensor, budget: int) -> None:
    """Forward and backward of the examples ``rows (b,)`` of ``seg`` (micro-batched to fit ``budget``) into ``.grad``.

    bf16 autocast on CUDA, with its weight-cast cache off (required inside CUDA-graph capture; each weight is cast
    once per forward anyway).
    """
    device = seg.inputs.device
    total = rows.numel() * seg.segment.num_kv_pairs
    mb = micro_batch(model, rows.numel(), seg.inputs.shape[1], budget)
    for start in range(0, rows.numel(), mb):
        part = rows[start : start + mb]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda", cache_enabled=False):
            loss = query_loss(model, seg.inputs[part], seg.qpos[part], seg.targets[part], total)
        loss.backward()


def train_step(
    model: StackedHybrid, opt: StackedAdamW, seg: SegmentData, rows: torch.Tensor, factor: float, budget: int
) -> None:
    """One optimiser step on the examples ``rows (b,)`` of ``seg``, eagerly (``opt.step`` clears the gradients)."""
    accumulate_gradients(model, seg, rows, budget)
    opt.step(factor)


def training_step(
    model: StackedHybrid, opt: StackedAdamW, *, batch_size: int, budget: int
) -> Callable[[SegmentData, torch.Tensor, float], None]:
    """The harness's step ``(segment, rows, schedule factor) -> None``: graphed on CUDA, else :func:`train_step`."""
    from mqarkit.gpu.cuda_graphs import GraphedSteps, graphs_enabled  # it builds on this module

    if graphs_enabled(opt.params[0].device):
        return GraphedSteps(model, opt, batch_size=batch_size, budget=budget).step
    return lambda seg, rows, factor: train_step(model, opt, seg, rows, factor, budget)


def evaluate(model: StackedHybrid, tests: list[SegmentData], *, batch: int, budget: int, amp: bool):
    """Per run: correct and total counts per test segment: ``(R, S)`` int64 each.

    The hidden states are computed with autograd recording, as in training, and the recorded graph is dropped with
    them: on CUDA that calls the compiled function training compiled (grad mode is part of what it is compiled for)
    instead of compiling an inference variant per stack. The argmax runs without autograd.
    """
    device = tests[0].inputs.device
    correct = torch.zeros(model.runs, len(tests), dtype=torch.long, device=device)
    totals = torch.zeros(len(tests), dtype=torch.long)
    for s, seg in enumerate(tests):
        n = seg.inputs.shape[1]
        mb = micro_batch(model, batch, n, budget)
        for start in range(0, seg.inputs.shape[0], mb):
            x, qpos, tgt = (t[start : start + mb] for t in (seg.inputs, seg.qpos, seg.targets))
            # the autocast state of training (its weight-cast cache off), which the compiled function is guarded on
            autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp, cache_enabled=False)
            with torch.enable_grad(), autocast:
                hidden = model.hidden_at(x, qpos)  # (R, b·D, d)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                pred = fused_linear_argmax(hidden, model.head_weight())  # (R, b·D) int64, computed without autograd
            correct[:, s] += (pred == tgt.reshape(1, -1)).sum(1)
        totals[s] = seg.qpos.numel()
    return correct.cpu(), totals


@dataclass
class StackResult:
    """Per run: test accuracy per segment at the end (or at the early stop), epochs trained, accuracy history."""

    accuracy: list[list[float]]  # (R, S)
    overall: list[float]  # (R,)
    epochs: list[int]  # (R,)
    history: list[list[float]]  # (R, epochs) overall accuracy after each epoch
    train_seconds: float
    steps: int


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
    weight_decay: float = 0.1,
    budget: int = DEFAULT_BUDGET,
    on_epoch: Callable[[int, list[float]], None] | None = None,
) -> StackResult:
    """Train all runs of ``model`` together for up to ``epochs`` epochs; see the module docstring."""
    if epochs < 1:
        raise ValueError(f"epochs={epochs}: needs epochs >= 1")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: needs batch_size >= 1")
    if not train or not tests:
        raise ValueError("train/tests: needs at least one training and one test segment")
    device = train[0].inputs.device
    amp = device.type == "cuda"
    opt = StackedAdamW(model, torch.tensor(lrs), weight_decay=weight_decay)
    take_step = training_step(model, opt, batch_size=batch_size, budget=budget)
    runs = model.runs
    active = torch.ones(runs, dtype=torch.bool)
    steps_per_epoch = sum(math.ceil(s.inputs.shape[0] / batch_size) for s in train)
    total_steps = epochs * steps_per_epoch
    result = StackResult([[0.0] * len(tests)] * runs, [0.0] * runs, [0] * runs, [[] for _ in range(runs)], 0.0, 0)
    t0 = time.perf_counter()
    step = 0
    for epoch in range(epochs):
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
        for j in order.tolist():
            si, rows = plan[j]
            take_step(train[si], rows, 0.5 * (1 + math.cos(math.pi * step / total_steps)))
            step += 1
        correct, totals = evaluate(model, tests, batch=test_batch_size, budget=budget, amp=amp)
        overall = (correct.sum(1).double() / totals.sum()).tolist()
        acc = (correct.double() / totals.double()).tolist()
        for r in range(runs):
            if active[r]:
                result.accuracy[r], result.overall[r], result.epochs[r] = acc[r], overall[r], epoch + 1
                result.history[r].append(overall[r])
                if overall[r] >= early_stop:
                    active[r] = False
        if on_epoch is not None:
            on_epoch(epoch + 1, overall)
        if not bool(active.any()):
            break
        opt.set_active(active.to(device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    result.train_seconds = time.perf_counter() - t0
    result.steps = step
    return result
