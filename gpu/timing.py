"""Timing helper: CUDA events after warm-up on the GPU, ``time.perf_counter`` on the CPU; medians.

``time_callable(fn, *, warmup=3, repeats=10, device=None)`` runs ``fn()`` ``warmup`` times untimed, then ``repeats``
times, each bracketed by CUDA events recorded on ``device``'s current stream when it is a CUDA device (else, ``None``
included, by ``perf_counter``), and returns the per-call times in seconds. ``median_seconds`` is the median of those.
Callers derive rates (tokens/s, bytes/s, FLOP/s) from the median. ``forward_and_backward_ms`` times a
differentiable function both ways, as the kernel benchmarks compare a fast path with its reference;
``kernel_benchmark_parser`` the arguments those scripts share (``--device``, ``--out-dir``, ``--repeats`` ≥ 1) and
``add_speedups`` their ratios, ``out_of_memory_recorded`` a measurement that ran out of device memory kept as such,
``timed_cell`` and ``speedup_cells`` the tables' cells for those figures, ``run_over_shapes`` the main of those that
measure one row per shape.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

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

    out: dict[str, object] = {}
    with out_of_memory_recorded(out, device):
        forward_ms = 1e3 * median_seconds(forward, repeats=repeats, device=device)
        out |= {
            "forward_ms": forward_ms,
            "forward_backward_ms": 1e3 * median_seconds(forward_backward, repeats=repeats, device=device),
        }
    return out


@contextlib.contextmanager
def out_of_memory_recorded(row: dict, device: torch.device | str, key: str = "error"):
    """Run the block; a device out-of-memory error ends it and is recorded as ``row[key]`` (its first line) instead
    of raised; afterwards, on CUDA, the allocator's cache is emptied for what is measured next."""
    try:
        yield
    except torch.OutOfMemoryError as err:
        row[key] = f"out of memory: {str(err).splitlines()[0]}"
    finally:
        if torch.device(device).type == "cuda":
            torch.cuda.empty_cache()


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer ``>= 1`` (else the parser's one-line error, exit 2)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def kernel_benchmark_parser(doc: str, *, repeats: int = 20, device: bool = True) -> argparse.ArgumentParser:
    """The arguments the kernel benchmarks share: ``--device`` (if ``device``; CUDA where there is one),
    ``--out-dir`` (``docs/results``) and ``--repeats`` (timed calls a figure is the median of, ``>= 1``); the script's
    docstring's first paragraph as the description."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    if device:
        ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out-dir", default="docs/results")
    ap.add_argument("--repeats", type=positive_int, default=repeats, help="timed calls a figure is the median of")
    return ap


def add_speedups(row: dict, fast: str, base: str = "eager") -> None:
    """``row["speedup_forward"]``, ``row["speedup_forward_backward"]``: ``base``'s median over ``fast``'s (the keys
    ``forward_and_backward_ms`` wrote, prefixed by each path's name), where both were measured (a path that ran out
    of memory has its error in the row instead)."""
    for key in ("forward", "forward_backward"):
        if f"{base}_{key}_ms" in row and f"{fast}_{key}_ms" in row:
            row[f"speedup_{key}"] = row[f"{base}_{key}_ms"] / row[f"{fast}_{key}_ms"]


def timed_cell(row: dict, path: str, what: str, fmt: str = "{:.3f}") -> str:
    """A table's cell for ``path``'s median ``what`` (``forward`` or ``forward_backward``: the keys
    :func:`forward_and_backward_ms` returns, prefixed by ``path``), or the error recorded in its place
    (``{path}_error``), or ``—``."""
    key = f"{path}_{what}_ms"
    return fmt.format(row[key]) if key in row else row.get(f"{path}_error", "—")


def speedup_cells(row: dict) -> str:
    """``"a×, b×"``: the row's :func:`add_speedups` ratios, forward and forward+backward (``—`` where not measured)."""
    return ", ".join(
        f"{row[key]:.2f}×" if key in row else "—" for key in ("speedup_forward", "speedup_forward_backward")
    )


def run_over_shapes(
    script: str,
    doc: str,
    argv: list[str],
    *,
    shapes: Sequence[tuple],
    small_shapes: Sequence[tuple],
    measure: Callable[[tuple, torch.dtype, torch.device, int], dict],
    write: Callable[[dict, Path], None],
) -> int:
    """The main of a kernel benchmark with one row per shape (``benchmarks/<script>.py``): the shared arguments and
    ``--dtype``, ``--small`` (``small_shapes``, for a CPU); each row ``measure(shape, dtype, device, repeats)``,
    printed as JSON and the report written after it (``write(report, out_dir)``, so a run cut short keeps its rows);
    the table ``<script>.md`` printed at the end."""
    from mqarkit.gpu.frontier.runner import environment  # the frontier's environment record; imported when run

    ap = kernel_benchmark_parser(doc)
    ap.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16")
    ap.add_argument("--small", action="store_true", help="tiny shapes (a CPU run)")
    args = ap.parse_args(argv)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    report = {"env": environment(device), "command": f"python benchmarks/{script}.py " + " ".join(argv)}
    report |= {"repeats": args.repeats, "dtype": args.dtype, "rows": []}
    for shape in small_shapes if args.small else shapes:
        report["rows"].append(measure(shape, dtype, device, args.repeats))
        print(json.dumps(report["rows"][-1]), flush=True)
        write(report, Path(args.out_dir))
    print((Path(args.out_dir) / f"{script}.md").read_text(), end="")
    return 0
