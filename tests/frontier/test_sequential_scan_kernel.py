"""The sequential selective scan (``kernels/sequential_scan.py``, a trial beside the log-depth kernels) against the
chunked torch scan of the Mamba family: values and the gradients of all five inputs, under Triton's interpreter on
CPU tensors (a subprocess with ``TRITON_INTERPRET=1``; skipped without triton) and compiled on a CUDA GPU (marked
``gpu``); the chunk of the backward changes no bit; the family under ``MQARKIT_SCAN=sequential`` against itself
without the kernels; the block rules and the input checks on the CPU."""

from __future__ import annotations

import pytest
import torch

from mqarkit.gpu.frontier.families.mamba import selective_scan
from mqarkit.gpu.frontier.kernels.selective_scan import Launch
from mqarkit.gpu.frontier.kernels.sequential_scan import (
    MAX_CHANNELS,
    MAX_STATE_BLOCK,
    NARROW_LAUNCH,
    STATE_BLOCK,
    WIDE_CHANNELS,
    WIDE_LAUNCH,
    accurate_exp,
    block_shape,
    chunk_length,
    default_launch,
    sequential_selective_scan,
)
from mqarkit.tolerances import assert_as_accurate_as_reference, assert_close_scaled
from tests.frontier.scan_cases import (
    NAMES,
    compare_family_paths,
    compare_padded_states,
    needs_triton,
    run_under_interpreter,
    scan_inputs,
)


def compare_with_torch_scan(shapes: list[tuple[int, int, int, int, int]], device: str) -> None:
    """The kernels (float32) against the chunked torch scan in float64, values and the gradients of a random
    cotangent, by :func:`assert_as_accurate_as_reference` with the torch scan in float32 as one chunk of all ``N``
    positions as the naive form in the same precision: a plain loop that steps through the positions as the kernels
    do, so its rounding accumulates over as many steps (the chunked scan's two levels of about ``√N`` steps round
    less: at N = 1024 a third of the loop's error)."""
    for shape in shapes:
        inputs = scan_inputs(*shape, device)
        exact = tuple(t.detach().double().requires_grad_() for t in inputs)
        dy = torch.randn(*shape[:4], generator=torch.Generator().manual_seed(1)).to(device)
        ours, ref = sequential_selective_scan(*inputs), selective_scan(*exact)[0]
        naive = selective_scan(*inputs, chunk=shape[2])[0]
        assert_as_accurate_as_reference(ours, ref, naive, dtype="float32", context=f"y {shape}")
        grads = zip(
            NAMES,
            torch.autograd.grad(ours, inputs, dy),
            torch.autograd.grad(ref, exact, dy.double()),
            torch.autograd.grad(naive, inputs, dy, materialize_grads=True),
        )
        for name, u, v, w in grads:
            assert_as_accurate_as_reference(u, v, w, dtype="float32", context=f"d{name} {shape}")


def compare_chunks(shape: tuple[int, int, int, int, int], chunks: list[int], device: str) -> None:
    """The backward's chunk decides only its buffers: every chunk gives the default chunk's gradients bit for bit
    (each state is recomputed by the same operations in the same order)."""
    inputs = scan_inputs(*shape, device, seed=2)
    dy = torch.randn(*shape[:4], generator=torch.Generator().manual_seed(3)).to(device)
    default = torch.autograd.grad(sequential_selective_scan(*inputs), inputs, dy)
    for chunk in chunks:
        grads = torch.autograd.grad(sequential_selective_scan(*inputs, chunk=chunk), inputs, dy)
        for name, u, v in zip(NAMES, grads, default):
            assert torch.equal(u, v), f"d{name}: chunk {chunk} against the default {chunk_length(shape[2])}"


def compare_launches(shape: tuple[int, int, int, int, int], launches: list[tuple[int, int, int]], device: str) -> None:
    """Other launches (entries of a program's state block, warps, state indices a block): the values and gradients
    of the default launch within float32, relative to each tensor's scale (another block splits the sums over
    channels, ``∂B, ∂C``, or over state indices, ``y, ∂x, ∂Δ``, otherwise)."""
    inputs = scan_inputs(*shape, device, seed=4)
    dy = torch.randn(*shape[:4], generator=torch.Generator().manual_seed(5)).to(device)
    default = sequential_selective_scan(*inputs)
    default_grads = torch.autograd.grad(default, inputs, dy)
    for tile, warps, state_block in launches:
        launch = Launch(tile, warps)
        assert block_shape(shape[4], tile, state_block) != block_shape(shape[4], default_launch(shape[3]).tile)
        y = sequential_selective_scan(*inputs, launch=launch, state_block=state_block)
        context = f"launch {launch}, {state_block} states a block"
        assert_close_scaled(y, default, dtype="float32", context=f"y, {context}")
        for name, u, v in zip(NAMES, torch.autograd.grad(y, inputs, dy), default_grads):
            assert_close_scaled(u, v, dtype="float32", context=f"d{name}, {context}")


# (R, B, N, d_i, n): N = 1; N not a square nor a power of two; d_i above one block of channels; one state index
INTERPRETED_SHAPES = [(1, 2, 1, 3, 2), (2, 3, 37, 10, 5), (1, 1, 20, 70, 1)]


@needs_triton
def test_kernels_under_interpreter_match_the_torch_scan(interpreted):
    run_under_interpreter(
        interpreted,
        "sequential_scan",
        "test_sequential_scan_kernel",
        "compare_with_torch_scan",
        INTERPRETED_SHAPES,
        "cpu",
    )


def compare_exp_with_torch(device: str) -> None:
    """The kernels' ``exp`` against float64 over ``[-86, 88.7]`` (densely near 0, where ``Δ A`` of a long memory
    lies): its largest relative error is no more than twice float32 ``torch.exp``'s on the same arguments
    (``tl.exp``'s, numpy's float32 ``exp`` under the interpreter, is three times it). Below -86 it holds ``e^-86``,
    past float32's range it is ``inf``, and a NaN stays NaN."""
    g = torch.Generator().manual_seed(0)
    u = torch.cat(
        [torch.linspace(-86, 88.7, 200_001), torch.linspace(-0.01, 0, 50_001), -3 * torch.rand(50_000, generator=g)]
    ).to(device)
    exact = torch.exp(u.double())
    error, torch_error = (float(((v.double() - exact) / exact).abs().max()) for v in (accurate_exp(u), torch.exp(u)))
    assert error <= 2 * torch_error, f"exp's largest relative error {error:.3g}, torch's {torch_error:.3g}"
    below, floor = torch.tensor([-86.5, -100.0, -1e30], device=device), torch.tensor([-86.0] * 3, device=device)
    assert torch.equal(accurate_exp(below), accurate_exp(floor)), "below -86: exp(-86)"
    odd = accurate_exp(torch.tensor([float("nan"), 88.73, 100.0, float("inf")], device=device))
    assert odd[0].isnan() and bool((odd[1:] == float("inf")).all()), odd


@needs_triton
def test_the_decays_exp_is_as_accurate_as_torchs_under_interpreter(interpreted):
    run_under_interpreter(
        interpreted, "sequential_scan", "test_sequential_scan_kernel", "compare_exp_with_torch", "cpu"
    )


@needs_triton
def test_the_backwards_chunk_changes_no_bit_under_interpreter(interpreted):
    run_under_interpreter(
        interpreted,
        "sequential_scan",
        "test_sequential_scan_kernel",
        "compare_chunks",
        (2, 2, 23, 6, 3),
        [1, 4, 23, 40],
        "cpu",
    )


@needs_triton
def test_other_launches_give_the_default_launchs_results_under_interpreter(interpreted):
    run_under_interpreter(
        interpreted,
        "sequential_scan",
        "test_sequential_scan_kernel",
        "compare_launches",
        (2, 2, 23, 6, 5),
        [(16, 1, 2), (32, 2, 8), (64, 4, 4)],
        "cpu",
    )


@needs_triton
@pytest.mark.parametrize("kernels", ["sequential", "sequential in blocks of 2 states"])
def test_kernels_leave_a_runs_padded_state_indices_at_zero(interpreted, kernels):
    """In blocks of 2 states, the first run's (2 of 5 state indices) last two blocks hold none of its own: skipped."""
    run_under_interpreter(interpreted, "sequential_scan", "scan_cases", "compare_padded_states", kernels, "cpu")


@needs_triton
def test_mamba_family_on_the_sequential_kernels_equals_the_torch_scan(interpreted):
    run_under_interpreter(interpreted, "sequential_scan", "scan_cases", "compare_family_paths", "sequential", "cpu")


def test_block_shape_and_chunk_length():
    assert STATE_BLOCK == 8  # the default the cases below are written for
    assert block_shape(1, 256) == (128, 2) and block_shape(5, 256) == (32, 8) and block_shape(24, 512) == (64, 8)
    assert block_shape(24, 1024, 32) == (32, 32) and block_shape(3, 16, 32) == (4, 4)
    assert block_shape(1024, 512, MAX_STATE_BLOCK) == (1, MAX_STATE_BLOCK) and block_shape(5000, 256) == (32, 8)
    for n in (1, 3, 24, 100, 1024, 5000):
        for tile, state_block in ((16, 2), (256, 8), (1024, 64), (2048, MAX_STATE_BLOCK)):
            block_d, block_s = block_shape(n, tile, state_block)
            assert block_s == min(state_block, max(2, 1 << (n - 1).bit_length()))
            assert 1 <= block_d <= MAX_CHANNELS and (block_d * block_s <= tile or block_d == 1)
    for bad in (0, 1, 3, 12, 2 * MAX_STATE_BLOCK):
        with pytest.raises(ValueError, match=rf"state_block={bad}: must be a power of two from 2 to 1024"):
            block_shape(24, 256, bad)
    assert [chunk_length(n) for n in (1, 2, 4, 5, 16, 17, 256, 1024)] == [1, 2, 2, 3, 4, 5, 16, 32]
    for n in range(1, 300):
        chunk = chunk_length(n)
        assert chunk * chunk >= n and (chunk - 1) ** 2 < n


def test_the_default_launch_widens_its_blocks_from_wide_channels_on():
    assert (NARROW_LAUNCH.tile, WIDE_LAUNCH.tile, WIDE_CHANNELS) == (256, 512, 256)  # as timed (module comment)
    assert default_launch(1) == default_launch(WIDE_CHANNELS - 1) == NARROW_LAUNCH
    assert default_launch(WIDE_CHANNELS) == default_launch(4096) == WIDE_LAUNCH


def compare_default_launch() -> None:
    """Without ``launch`` the kernels run :func:`default_launch` of ``d_i``: at ``d_i`` = WIDE_CHANNELS the same bits
    as WIDE_LAUNCH asked for, values and gradients, and not NARROW_LAUNCH's split of ``∂B, ∂C`` (other sums)."""
    inputs = scan_inputs(1, 2, 6, WIDE_CHANNELS, 3, "cpu", seed=8)
    dy = torch.randn(1, 2, 6, WIDE_CHANNELS, generator=torch.Generator().manual_seed(9))
    results = {}
    for name, launch in (("default", None), ("wide", WIDE_LAUNCH), ("narrow", NARROW_LAUNCH)):
        y = sequential_selective_scan(*inputs, launch=launch)
        results[name] = (y, *torch.autograd.grad(y, inputs, dy))
    assert all(torch.equal(u, v) for u, v in zip(results["default"], results["wide"]))
    assert not torch.equal(results["default"][4], results["narrow"][4])  # ∂B summed over other channel blocks


@needs_triton
def test_the_kernels_take_the_default_launch_of_their_channels_under_interpreter(interpreted):
    run_under_interpreter(interpreted, "sequential_scan", "test_sequential_scan_kernel", "compare_default_launch")


def test_bad_inputs_are_refused_before_any_work():
    x, dt, a, b, c = scan_inputs(1, 2, 5, 3, 2, "cpu")
    with pytest.raises(ValueError, match=r"a \(R, d_i, n\)"):
        sequential_selective_scan(x, dt, a[:, :2], b, c)
    with pytest.raises(ValueError, match=r"b, c \(R, B, N, n\)"):
        sequential_selective_scan(x, dt, a, b, c[..., :1])
    with pytest.raises(ValueError, match=r"states \(2,\) torch.int64 on cpu: needs an \(R,\) = \(1,\) integer"):
        sequential_selective_scan(x, dt, a, b, c, torch.tensor([1, 2]))
    for chunk in (0, -3, 2.0, True):
        with pytest.raises(ValueError, match=rf"chunk={chunk!r}: must be an integer >= 1"):
            sequential_selective_scan(x, dt, a, b, c, chunk=chunk)
    with pytest.raises(ValueError, match=r"launch=\(1024, 4\): must be a Launch"):
        sequential_selective_scan(x, dt, a, b, c, launch=(1024, 4))
    for bad in (0, 3, 8.0, True):
        with pytest.raises(ValueError, match=rf"state_block={bad!r}: must be a power of two from 2 to 1024"):
            sequential_selective_scan(x, dt, a, b, c, state_block=bad)


@pytest.mark.gpu
def test_kernels_on_cuda_match_the_torch_scan():
    # a [B] Fig. 2 Mamba stack's shapes, smaller batch: d = 64 (d_i = 128), n = 24; the longest test length
    # and d = 128 (d_i = 256), where the default launch has wider blocks
    compare_with_torch_scan(
        [(4, 8, 256, 128, 24), (2, 2, 1024, 128, 16), (2, 4, 256, 256, 24), (3, 4, 77, 40, 5)], "cuda"
    )


@pytest.mark.gpu
def test_the_decays_exp_on_cuda_is_as_accurate_as_torchs():
    compare_exp_with_torch("cuda")


@pytest.mark.gpu
def test_the_backwards_chunk_changes_no_bit_on_cuda():
    compare_chunks((2, 4, 256, 128, 24), [1, 7, 64, 256], "cuda")


@pytest.mark.gpu
def test_other_launches_on_cuda_give_the_default_launchs_results():
    compare_launches((2, 4, 256, 128, 24), [(128, 1, 8), (512, 2, 16), (1024, 4, 32), (2048, 8, 8)], "cuda")


@pytest.mark.gpu
def test_kernels_on_cuda_leave_a_runs_padded_state_indices_at_zero():
    compare_padded_states("sequential", "cuda")
    compare_padded_states("sequential in blocks of 2 states", "cuda")


@pytest.mark.gpu
def test_mamba_family_on_cuda_on_the_sequential_kernels_equals_the_torch_scan():
    compare_family_paths("sequential", "cuda")


def test_the_mamba_familys_memory_estimate_counts_the_sequential_kernels_buffers(monkeypatch):
    """Under ``MQARKIT_SCAN=sequential`` (the kernels taken as serving), the family's micro-batch estimate per example
    is the backward's buffers and shares: at d = 8 (d_i = 16), n = 7 (one block of 32 channels × 8 states), N = 19
    (chunks of 5, 4 checkpoints), per run ``32·8·(5 + 4)`` buffered entries, ``2·19·16`` for ``∂x, ∂Δ``'s shares and
    ``2·19·7`` for ``∂B, ∂C``'s."""
    from mqarkit.gpu.frontier.families import family_class
    from mqarkit.gpu.frontier.kernels import sequential_scan

    knobs = [{"d_state": 4}, {"d_state": 7}]
    mixer = family_class("mamba")(8, 32, knobs, [torch.Generator().manual_seed(i) for i in range(2)])
    assert mixer.intermediate_elements(19) == 2 * 19 * 16 * 7  # the CPU's torch scan: every state
    monkeypatch.setattr(sequential_scan, "sequential_scan_available", lambda *args: True)
    assert mixer.intermediate_elements(19) == 2 * 19 * 16 * 7  # not asked for
    monkeypatch.setenv("MQARKIT_SCAN", "sequential")
    assert default_launch(16) == NARROW_LAUNCH and block_shape(7, NARROW_LAUNCH.tile) == (32, 8)
    assert chunk_length(19) == 5
    assert mixer.intermediate_elements(19) == 2 * (32 * 8 * (5 + 4) + 2 * 19 * 16 + 2 * 19 * 7)
