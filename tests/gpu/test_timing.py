"""The kernel benchmarks' shared helpers (mqarkit.gpu.timing): timings both ways, an out-of-memory error kept in the
row rather than raised, the count rule of their arguments, the speed-up ratios."""

from __future__ import annotations

import argparse

import pytest
import torch

from mqarkit.gpu.timing import (
    add_speedups,
    forward_and_backward_ms,
    kernel_benchmark_parser,
    out_of_memory_recorded,
    positive_int,
)


def test_forward_and_backward_ms_times_both_ways_on_the_cpu():
    x = torch.randn(8, 8, requires_grad=True)
    timed = forward_and_backward_ms(lambda a: (a * a).sum(-1), (x,), torch.ones(8), repeats=2, device="cpu")
    assert set(timed) == {"forward_ms", "forward_backward_ms"} and all(v > 0 for v in timed.values())


def test_an_out_of_memory_error_is_recorded_instead_of_raised():
    def too_big(a):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9 GiB\nmore lines")

    x = torch.randn(2, requires_grad=True)
    assert forward_and_backward_ms(too_big, (x,), torch.ones(2), repeats=1, device="cpu") == {
        "error": "out of memory: CUDA out of memory. Tried to allocate 9 GiB"
    }
    row = {"N": 4}
    with out_of_memory_recorded(row, "cpu", key="compare_error"):
        too_big(x)
    assert row == {"N": 4, "compare_error": "out of memory: CUDA out of memory. Tried to allocate 9 GiB"}


def test_other_errors_are_raised():
    with pytest.raises(ValueError, match="not memory"), out_of_memory_recorded({}, "cpu"):
        raise ValueError("not memory")


def test_counts_below_one_are_refused():
    assert positive_int("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match="must be >= 1, got 0"):
        positive_int("0")
    ap = kernel_benchmark_parser("Doc.\n\nMore.", repeats=7, device=False)
    assert ap.description == "Doc." and ap.parse_args([]).repeats == 7 and not hasattr(ap.parse_args([]), "device")


def test_speedups_only_where_both_paths_were_measured():
    row = {"eager_forward_ms": 4.0, "eager_forward_backward_ms": 9.0, "kernel_forward_ms": 2.0, "kernel_error": "x"}
    add_speedups(row, "kernel")
    assert row["speedup_forward"] == 2.0 and "speedup_forward_backward" not in row
