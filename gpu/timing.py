"""Timing helper: CUDA events after warm-up on the GPU, ``time.perf_counter`` on the CPU; medians.

``time_callable(fn, *, warmup=3, repeats=10, device=None)`` runs ``fn()`` ``warmup`` times untimed, then ``repeats``
times, each bracketed by CUDA events recorded on ``device``'s current stream when it is a CUDA device (else, ``None``
included, by ``perf_counter``), and returns the per-call times in seconds. ``median_seconds`` is the median of those.
Callers derive rates (tokens/s, bytes/s, FLOP/s) from the median. ``forward_and_backward_ms`` times a
differentiable function both ways, as the kernel benchmarks compare a fast path with its reference.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def time_callable(
    fn: Callable[[], object], *, warmup: int = 3, repeats: int = 10, device: torch.device | str | None = None
) -> list[float]:
    """Per-call wall times in seconds of ``fn()`` after ``warmup`` untimed calls."""
    if warmup < 0:
        raise ValueError(f"warmup={warmup}: must be >= 0")
    if repeats < 1:
        raise ValueError(f"repeats={repeats}: must be >= 1")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    for _ in range(warmup):
        fn()
    times: list[float] = []
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        for _ in range(repeats):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record(torch.cuda.current_stream(dev))  # the stream of `dev`, not of the current device
            fn()
            end.record(torch.cuda.current_stream(dev))
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return times


def median_seconds(fn: Callable[[], object], *, warmup: int = 3, repeats: int = 10, device=None) -> float:
    """Median of :func:`time_callable`."""
    return statistics.median(time_callable(fn, warmup=warmup, repeats=repeats, device=device))


def forward_and_backward_ms(
    fn: Callable[..., torch.Tensor],
    inputs: tuple[torch.Tensor, ...],
    cotangent: torch.Tensor,
    *,
    repeats: int,
    device: torch.device | str,
) -> dict[str, object]:
    """``{"forward_ms", "forward_backward_ms"}``: medians of ``fn(*inputs)`` without autograd, and of it with the
    gradients of every input for ``cotangent``; ``{"error": ...}`` instead where the device runs out of memory."""

    def forward():
        with torch.no_grad():
            fn(*inputs)

    def forward_backward():
        torch.autograd.grad(fn(*inputs), inputs, cotangent)

    try:
        return {
            "forward_ms": 1e3 * median_seconds(forward, repeats=repeats, device=device),
            "forward_backward_ms": 1e3 * median_seconds(forward_backward, repeats=repeats, device=device),
        }
    except torch.OutOfMemoryError as err:
        return {"error": f"out of memory: {str(err).splitlines()[0]}"}
    finally:
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()
