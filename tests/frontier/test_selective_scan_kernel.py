"""The fused selective scan (``kernels/selective_scan.py``) against the chunked torch scan of the Mamba family: values
and the gradients of all five inputs, under Triton's interpreter on CPU tensors (a subprocess with
``TRITON_INTERPRET=1``; skipped without triton) and compiled on a CUDA GPU (marked ``gpu``); the Mamba family with the
kernels against itself without them; the block rule and the input checks on the CPU."""

from __future__ import annotations

import pytest
import torch

from mqarkit.gpu.frontier.families.mamba import selective_scan
from mqarkit.gpu.frontier.kernels.selective_scan import (
    BACKWARD,
    MAX_LEN,
    TILE,
    Launch,
    block_sizes,
    fused_selective_scan,
    log_depth_scan,
)
from mqarkit.tolerances import assert_as_accurate_as_reference, assert_close, assert_close_scaled
from tests.frontier.scan_cases import (
    NAMES,
    compare_family_paths,
    compare_padded_states,
    needs_triton,
    run_under_interpreter,
    scan_inputs,
)


def compare_with_torch_scan(shapes: list[tuple[int, int, int, int, int]], device: str) -> None:
    """``fused_selective_scan`` (float32) against ``selective_scan`` run in float64 on the same inputs: values, and the
    gradients of a random cotangent, for each shape, by the rule of :func:`assert_as_accurate_as_reference`, with
    :func:`log_depth_scan` in float32 (the kernels' association in plain torch) as the naive form in the same precision.
    A log-depth scan rounds more than the chunked torch scan (it multiplies decays together): on an H100 the kernels'
    ``y`` was 1.7e-6 of its scale from float64 at N = 1024, outside the float32 row and more than twice the chunked
    float32 scan's error, and the log-depth scan's own was 1.6e-6 there on the CPU; so the kernels must be as close
    to float64 as the log-depth scan in float32 is (no more than twice as far), which a wrong kernel is not."""
    for shape in shapes:
        inputs = scan_inputs(*shape, device)
        exact = tuple(t.detach().double().requires_grad_() for t in inputs)
        dy = torch.randn(*shape[:4], generator=torch.Generator().manual_seed(1)).to(device)
        fused, naive, ref = fused_selective_scan(*inputs), log_depth_scan(*inputs), selective_scan(*exact)[0]
        assert_as_accurate_as_reference(fused, ref, naive, dtype="float32", context=f"y {shape}")
        grads = zip(
            NAMES,
            torch.autograd.grad(fused, inputs, dy),
            torch.autograd.grad(ref, exact, dy.double()),
            torch.autograd.grad(naive, inputs, dy, materialize_grads=True),  # N = 1: no decay is ever used
        )
        for name, u, v, w in grads:
            assert_as_accurate_as_reference(u, v, w, dtype="float32", context=f"d{name} {shape}")


def test_log_depth_scan_equals_the_chunked_scan_in_float64():
    """The kernels' naive form is the scan: equal to the chunked torch scan in float64, values and gradients, at a
    length that is not a power of two and one that is."""
    for shape in [(2, 3, 37, 5, 4), (1, 2, 64, 3, 2)]:
        inputs = tuple(t.detach().double().requires_grad_() for t in scan_inputs(*shape, "cpu", seed=3))
        dy = torch.randn(*shape[:4], generator=torch.Generator().manual_seed(4), dtype=torch.float64)
        tree, chunked = log_depth_scan(*inputs), selective_scan(*inputs)[0]
        assert_close(tree, chunked, dtype="float64", context=f"y {shape}")
        for name, u, v in zip(NAMES, torch.autograd.grad(tree, inputs, dy), torch.autograd.grad(chunked, inputs, dy)):
            assert_close(u, v, dtype="float64", context=f"d{name} {shape}")


# (R, B, N, d_i, n): N = 1; N not a power of two; d_i not a multiple of BLOCK_D; one state index
INTERPRETED_SHAPES = [(1, 2, 1, 3, 2), (2, 3, 37, 10, 5), (1, 1, 20, 4, 1)]


@needs_triton
def test_kernels_under_interpreter_match_the_torch_scan(interpreted):
    run_under_interpreter(
        interpreted,
        "selective_scan",
        "test_selective_scan_kernel",
        "compare_with_torch_scan",
        INTERPRETED_SHAPES,
        "cpu",
    )


@needs_triton
def test_kernels_skip_a_runs_padded_state_indices(interpreted):
    run_under_interpreter(interpreted, "selective_scan", "scan_cases", "compare_padded_states", "fused", "cpu")


def compare_backward_launches(shape: tuple[int, int, int, int, int], launches: list[tuple[int, int]], device: str):
    """The backward kernel launched with other tiles and warps (``Launch``): its gradients equal the default
    launch's within float32, relative to each gradient's scale, as the tolerance policy compares sums (another tile
    splits the sums over channels, ``∂B, ∂C``, into other blocks and orders ``∂Δ``'s otherwise: on an H100, 39 of
    262,144 entries of ``∂Δ`` at which terms cancel differed by 7e-6 absolute, outside the elementwise table, while at
    the benchmark's shapes every launch's gradients were within 2e-7 of their scale); the forward does not change."""
    inputs = scan_inputs(*shape, device, seed=8)
    dy = torch.randn(*shape[:4], generator=torch.Generator().manual_seed(9)).to(device)
    default = torch.autograd.grad(fused_selective_scan(*inputs), inputs, dy)
    for tile, warps in launches:
        launch = Launch(tile, warps)
        assert block_sizes(shape[2], tile) != block_sizes(shape[2], BACKWARD.tile)  # another split of the channels
        grads = torch.autograd.grad(fused_selective_scan(*inputs, backward_launch=launch), inputs, dy)
        for name, u, v in zip(NAMES, grads, default):
            assert_close_scaled(u, v, dtype="float32", context=f"d{name}, backward launch {launch}")


@needs_triton
def test_backward_launches_give_the_default_launchs_gradients(interpreted):
    run_under_interpreter(
        interpreted,
        "selective_scan",
        "test_selective_scan_kernel",
        "compare_backward_launches",
        (2, 3, 37, 10, 5),
        [(64, 2), (128, 4)],
        "cpu",
    )


def test_a_bad_launch_is_refused():
    with pytest.raises(ValueError, match=r"tile=1000: must be a power of two >= 16"):
        Launch(1000, 4)
    with pytest.raises(ValueError, match=r"tile=8: must be a power of two >= 16"):
        Launch(8, 4)
    with pytest.raises(ValueError, match=r"warps=3: must be one of \(1, 2, 4, 8, 16\)"):
        Launch(1024, 3)
    x, dt, a, b, c = scan_inputs(1, 2, 5, 3, 2, "cpu")
    with pytest.raises(ValueError, match=r"backward_launch=\(1024, 4\): must be a Launch"):
        fused_selective_scan(x, dt, a, b, c, backward_launch=(1024, 4))


@needs_triton
def test_mamba_family_with_the_kernels_equals_it_without(interpreted):
    run_under_interpreter(interpreted, "selective_scan", "scan_cases", "compare_family_paths", "fused", "cpu")


def test_block_sizes_fill_one_tile():
    assert block_sizes(1) == (16, 32) and block_sizes(16) == (16, 32)
    assert block_sizes(37) == (64, 32) and block_sizes(256) == (256, 8) and block_sizes(1024) == (1024, 2)
    assert block_sizes(MAX_LEN) == (MAX_LEN, 1)
    for n in (1, 17, 100, 256, 1000, MAX_LEN):
        block_n, block_d = block_sizes(n)
        assert block_n >= n and block_n * block_d <= max(TILE, 16 * 32)


def test_bad_shapes_are_refused_before_any_work():
    x, dt, a, b, c = scan_inputs(1, 2, 5, 3, 2, "cpu")
    with pytest.raises(ValueError, match=r"a \(R, d_i, n\)"):
        fused_selective_scan(x, dt, a[:, :2], b, c)
    with pytest.raises(ValueError, match=r"b, c \(R, B, N, n\)"):
        fused_selective_scan(x, dt, a, b, c[..., :1])
    with pytest.raises(ValueError, match=r"states \(2,\) torch.int64 on cpu: needs an \(R,\) = \(1,\) integer"):
        fused_selective_scan(x, dt, a, b, c, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="states"):
        fused_selective_scan(x, dt, a, b, c, torch.tensor([1.0]))
    long = torch.empty(1, 1, MAX_LEN + 1, 1)
    with pytest.raises(ValueError, match="MAX_LEN"):
        fused_selective_scan(
            long, long, torch.empty(1, 1, 1), torch.empty(1, 1, MAX_LEN + 1, 1), torch.empty(1, 1, MAX_LEN + 1, 1)
        )


@pytest.mark.gpu
def test_kernels_on_cuda_match_the_torch_scan():
    # a [B] Fig. 2 Mamba stack's shapes, smaller batch: d = 64 (d_i = 128), n = 24; and the longest test length
    compare_with_torch_scan(
        [(4, 8, 256, 128, 24), (2, 2, 1024, 128, 16), (1, 2, 2048, 3, 2), (3, 4, 77, 40, 5)], "cuda"
    )


@pytest.mark.gpu
def test_mamba_family_on_cuda_with_the_kernels_equals_it_without():
    compare_family_paths("fused", "cuda")


@pytest.mark.gpu
def test_kernels_on_cuda_skip_a_runs_padded_state_indices():
    compare_padded_states("fused", "cuda")


@pytest.mark.gpu
def test_backward_launches_on_cuda_give_the_default_launchs_gradients():
    # a [B] Fig. 2 Mamba stack's shapes, smaller batch (d = 64, N = 256): the launches the benchmark tries first
    compare_backward_launches((2, 4, 256, 128, 24), [(1024, 4), (1024, 8), (512, 4)], "cuda")
