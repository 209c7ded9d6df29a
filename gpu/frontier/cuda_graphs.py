"""Whole training steps of a stack recorded as CUDA graphs and replayed.

A step of a small stack (N = 64: ≈ 300 kernels of a few µs each) is bound by the CPU that launches the kernels, not
by the GPU. :class:`GraphedSteps` records, once per (training segment, batch size), the whole step — gathering the
batch rows, forward, backward, the :class:`~mqarkit.gpu.frontier.optim.StackedAdamW` update — into one CUDA graph, and
afterwards replays it with one launch: the CPU then only copies the next rows ``(b,)`` into the graph's input buffer
and writes the schedule factor.

What makes a step replayable: the data of a segment is one device tensor that never moves (rows are gathered inside
the graph from a static index buffer); every per-step scalar of the optimiser is a device tensor (step count, factor,
learning rates written in place); autocast runs with its cache off; the gradients are the graph's static buffers.

Capture needs the step's kernels compiled and warmed first, and warming runs real steps. The warm-up steps therefore
run on a snapshot: parameters, moments and the step count are copied aside and restored afterwards, so the model
and optimiser are exactly as they were — the first *replayed* step is the first training step. The graphed step is
the eager one, :func:`~mqarkit.gpu.frontier.steps.train_step` (a GPU test compares them step by step). Batches of
another size (the last, partial batch of a segment) run eagerly. ``MQARKIT_CUDA_GRAPHS=0`` turns graphs off.

The per-run loss sums (``loss_sums (R,)``, read once per epoch by the training loop) are one more persistent device
tensor: the graph adds each replayed step's losses to it in place, and the warm-up's additions are undone with the
rest of the snapshot.
"""

from __future__ import annotations

import os

import torch

from mqarkit.gpu.frontier.model import StackedHybrid
from mqarkit.gpu.frontier.optim import StackedAdamW
from mqarkit.gpu.frontier.steps import SegmentData, accumulate_gradients, train_step

WARMUP_STEPS = 2


def graphs_enabled(device: torch.device) -> bool:
    """CUDA graphs serve CUDA devices unless ``MQARKIT_CUDA_GRAPHS=0``."""
    return device.type == "cuda" and os.environ.get("MQARKIT_CUDA_GRAPHS", "1") != "0"


class GraphedSteps:
    """Training steps of ``model`` with ``opt``: graphed for batches of ``batch_size`` rows, eager otherwise."""

    def __init__(
        self,
        model: StackedHybrid,
        opt: StackedAdamW,
        *,
        batch_size: int,
        budget: int,
        loss_sums: torch.Tensor | None = None,
    ):
        device = opt.params[0].device
        if device.type != "cuda":
            raise ValueError(f"model: CUDA graphs need a CUDA model, got device {device}")
        self.model, self.opt, self.batch_size, self.budget = model, opt, batch_size, budget
        self.loss_sums = loss_sums  # (R,) float32 on the device, or None
        self.device = device
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}  # id(segment) -> (graph, rows)
        self.pool = torch.cuda.graph_pool_handle()  # one memory pool for all graphs of the stack (see _capture)

    def step(self, seg: SegmentData, rows: torch.Tensor, factor: float) -> None:
        """One optimiser step on ``seg``'s examples ``rows (b,)`` with the schedule ``factor``."""
        # capture and replay use the current device's streams: make it the model's (one worker per GPU)
        with torch.cuda.device(self.device):
            if rows.numel() != self.batch_size:
                train_step(self.model, self.opt, seg, rows, factor, self.budget, self.loss_sums)
                return
            if id(seg) not in self.graphs:
                self.graphs[id(seg)] = self._capture(seg)
            graph, static_rows = self.graphs[id(seg)]
            static_rows.copy_(rows, non_blocking=True)
            self.opt.set_factor(factor)
            graph.replay()

    def _body(self, seg: SegmentData, rows: torch.Tensor) -> None:
        accumulate_gradients(self.model, seg, rows, self.budget, self.loss_sums)
        self.opt.step(clear_grads=False)

    def _capture(self, seg: SegmentData) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        static_rows = torch.arange(self.batch_size, device=seg.inputs.device)  # any valid rows; overwritten per step
        # detached copies: a clone that records autograd history would keep the parameters' AccumulateGrad nodes
        # alive, bound to this stream, and break the capture below
        snapshot = self._snapshot_tensors()
        saved = [t.detach().clone() for t in snapshot]
        factor = self.opt.neg_factor.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                for p in self.opt.params:
                    p.grad = None
                self._body(seg, static_rows)
        torch.cuda.current_stream().wait_stream(side)
        with torch.no_grad():
            torch._foreach_copy_(snapshot, saved)
            self.opt.neg_factor.copy_(factor)
        del saved
        for p in self.opt.params:
            p.grad = None
        # All graphs of the stack share one pool, so the stack holds the largest step's memory, not the sum over
        # segments. Safe in any replay order: a graph keeps nothing in its pool from one replay to the next (the
        # persistent tensors — parameters, moments, learning rates, the rows buffer — live outside the pool; the
        # gradients are written and consumed within the replay), and graphs replay one at a time on one stream.
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            self._body(seg, static_rows)
        for p in self.opt.params:  # the graph keeps its gradient buffers; eager steps allocate their own
            p.grad = None
        return graph, static_rows

    def _snapshot_tensors(self) -> list[torch.Tensor]:
        """What the warm-up steps change and must leave as it was: the optimiser's state and the loss sums."""
        return list(self.opt.state_tensors()) + ([] if self.loss_sums is None else [self.loss_sums])
