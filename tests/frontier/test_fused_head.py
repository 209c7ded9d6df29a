"""fused_linear_cross_entropy (Triton kernels) == reference_linear_cross_entropy == F.cross_entropy on explicit logits;
fused_linear_argmax (Triton kernel) == reference_linear_argmax == argmax of the explicit logits.

Three layers: CPU tests of the references, the validation and the CPU fallback (always run); the Triton kernels under
the Triton interpreter on CPU tensors, in a subprocess with ``TRITON_INTERPRET=1`` (skipped without triton); the
compiled kernels on a CUDA GPU (marked ``gpu``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from mqarkit.gpu.frontier.kernels.fused_head import (
    fused_linear_argmax,
    fused_linear_cross_entropy,
    reference_linear_argmax,
    reference_linear_cross_entropy,
)
from mqarkit.tolerances import assert_close

HAS_TRITON = importlib.util.find_spec("triton") is not None


def _inputs(r: int, m: int, d: int, c: int, dtype: torch.dtype, device: str = "cpu", seed: int = 0):
    """``h (R, M, d)``, ``w (R, d, c)`` with unit-variance logits, ``targets (M,)`` int64."""
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(r, m, d, generator=gen, dtype=torch.float64)
    w = torch.randn(r, d, c, generator=gen, dtype=torch.float64) / d**0.5
    targets = torch.randint(0, c, (m,), generator=gen)
    return h.to(device=device, dtype=dtype), w.to(device=device, dtype=dtype), targets.to(device)


def _value_and_grads(fn, h: torch.Tensor, w: torch.Tensor, targets: torch.Tensor, scale: float = 0.7):
    """``fn(h, w, targets)`` and the gradients of ``scale · fn`` w.r.t. ``h`` and ``w`` (fresh leaves)."""
    h = h.detach().clone().requires_grad_(True)
    w = w.detach().clone().requires_grad_(True)
    loss = fn(h, w, targets)
    (scale * loss).backward()
    return loss.detach(), h.grad, w.grad


def _explicit(h: torch.Tensor, w: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``Σ_r F.cross_entropy(h[r] @ w[r], targets, reduction="sum")`` on explicit logits."""
    return sum(F.cross_entropy(h[r] @ w[r], targets, reduction="sum") for r in range(h.shape[0]))


# ---------------------------------------------------------------------------------------------------------------------
# CPU: the reference, validation, fallback
# ---------------------------------------------------------------------------------------------------------------------

SIZES = [(1, 1, 1, 1), (1, 4, 3, 2), (3, 17, 5, 11), (2, 37, 48, 300)]  # (R, M, d, c)


@pytest.mark.parametrize("r, m, d, c", SIZES)
def test_reference_equals_explicit_cross_entropy_float64(r: int, m: int, d: int, c: int) -> None:
    h, w, targets = _inputs(r, m, d, c, torch.float64)
    got, got_dh, got_dw = _value_and_grads(reference_linear_cross_entropy, h, w, targets)
    want, want_dh, want_dw = _value_and_grads(_explicit, h, w, targets)
    assert got.dtype == torch.float64 and got.shape == ()
    assert_close(got, want, dtype="float64", context="value")
    assert_close(got_dh, want_dh, dtype="float64", context="dh")
    assert_close(got_dw, want_dw, dtype="float64", context="dw")


def test_reference_is_float32_for_low_precision_inputs() -> None:
    h, w, targets = _inputs(2, 9, 8, 20, torch.bfloat16)
    got = reference_linear_cross_entropy(h, w, targets)
    assert got.dtype == torch.float32
    logits = torch.bmm(h, w).float()  # bmm in bf16, log-softmax in float32
    want = _explicit(torch.eye(9).expand(2, 9, 9), logits, targets)  # I @ logits[r] = logits[r]
    assert_close(got, want, dtype="float32", context="bf16 value")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("r, m, d, c", SIZES)
def test_cpu_fallback_equals_reference(r: int, m: int, d: int, c: int, dtype: torch.dtype) -> None:
    h, w, targets = _inputs(r, m, d, c, dtype, seed=1)
    got = _value_and_grads(fused_linear_cross_entropy, h, w, targets)
    want = _value_and_grads(reference_linear_cross_entropy, h, w, targets)
    for name, a, e in zip(("value", "dh", "dw"), got, want):
        assert a.dtype == e.dtype
        assert_close(a, e, dtype=dtype, context=name)


def test_autocast_casts_both_inputs_like_bmm() -> None:
    h, w, targets = _inputs(2, 6, 4, 10, torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fused_linear_cross_entropy(h, w, targets)
    want = reference_linear_cross_entropy(h.bfloat16(), w.bfloat16(), targets)
    assert_close(got, want, dtype="float32", context="autocast")


def test_empty_rows_give_zero() -> None:
    h, w, targets = _inputs(2, 0, 4, 10, torch.float32)
    loss, dh, dw = _value_and_grads(fused_linear_cross_entropy, h, w, targets)
    assert loss.item() == 0.0 and dh.shape == (2, 0, 4) and bool((dw == 0).all())


def _bad(**changes):
    h, w, targets = _inputs(2, 5, 4, 7, torch.float32)
    args = {"h": h, "w": w, "targets": targets}
    args.update(changes)
    return args


BAD = [
    ({"h": [[[1.0]]]}, TypeError, r"h: needs a torch.Tensor"),
    ({"targets": [0, 1, 2, 3, 4]}, TypeError, r"targets: needs a torch.Tensor"),
    ({"h": torch.zeros(5, 4)}, ValueError, r"h: needs shape \(R, M, d\)"),
    ({"w": torch.zeros(3, 4, 7)}, ValueError, r"w: needs shape \(R, d, c\) with R=2, d=4 from h, got \(3, 4, 7\)"),
    ({"w": torch.zeros(2, 5, 7)}, ValueError, r"w: needs shape \(R, d, c\) with R=2, d=4 from h"),
    ({"w": torch.zeros(4, 7)}, ValueError, r"w: needs shape \(R, d, c\)"),
    ({"w": torch.zeros(2, 4, 0)}, ValueError, r"w: needs c >= 1"),
    ({"targets": torch.zeros(6, dtype=torch.int64)}, ValueError, r"targets: needs shape \(M,\) with M=5"),
    ({"targets": torch.zeros(1, 5, dtype=torch.int64)}, ValueError, r"targets: needs shape \(M,\)"),
    ({"targets": torch.zeros(5, dtype=torch.int32)}, TypeError, r"targets: needs dtype torch.int64"),
    ({"h": torch.zeros(2, 5, 4, dtype=torch.int64)}, TypeError, r"h: needs a floating-point dtype"),
    ({"w": torch.zeros(2, 4, 7, dtype=torch.int64)}, TypeError, r"w: needs a floating-point dtype"),
    ({"w": torch.zeros(2, 4, 7, dtype=torch.float64)}, TypeError, r"w: needs the dtype of h \(torch.float32\)"),
    ({"w": torch.zeros(2, 4, 7, device="meta")}, ValueError, r"w: needs the device of h \(cpu\), got meta"),
    ({"targets": torch.zeros(5, dtype=torch.int64, device="meta")}, ValueError, r"targets: needs the device of h"),
    ({"targets": torch.tensor([0, 1, 7, 2, 3])}, ValueError, r"targets: need values in \[0, c=7\), got min 0, max 7"),
    ({"targets": torch.tensor([0, -1, 6, 2, 3])}, ValueError, r"targets: need values in \[0, c=7\), got min -1"),
]


@pytest.mark.parametrize("fn", [fused_linear_cross_entropy, reference_linear_cross_entropy])
@pytest.mark.parametrize("changes, error, message", BAD)
def test_validation_errors(fn, changes: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        fn(**_bad(**changes))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("r, m, d, c", SIZES)
def test_argmax_cpu_fallback_equals_reference(r: int, m: int, d: int, c: int, dtype: torch.dtype) -> None:
    h, w, _ = _inputs(r, m, d, c, dtype, seed=2)
    got = fused_linear_argmax(h, w)
    want = reference_linear_argmax(h, w)
    assert got.dtype == want.dtype == torch.int64 and got.shape == want.shape == (r, m)
    assert torch.equal(got, want)
    if dtype == torch.float64:
        assert torch.equal(got, torch.bmm(h, w).argmax(-1))


def test_argmax_reference_uses_float32_logits_and_first_index_of_ties() -> None:
    """bf16 inputs: the argmax of the float32 logits, not of the bf16-rounded ones; equal maxima: the first index."""
    h = torch.tensor([[[1.0, 1.0]]], dtype=torch.bfloat16)  # (1, 1, 2)
    w = torch.tensor([[[1.0, 1.0, 0.0], [0.0, 2.0**-9, 1.0]]], dtype=torch.bfloat16)  # (1, 2, 3): logits 1, 1+2^-9, 1
    assert torch.bmm(h, w)[0, 0, 1] == 1.0  # 1 + 2^-9 rounds to 1 in bf16: bf16 logits would tie and answer 0
    assert reference_linear_argmax(h, w).tolist() == [[1]]
    assert fused_linear_argmax(h, w).tolist() == [[1]]
    assert reference_linear_argmax(h, w[:, :, [0, 0, 2]]).tolist() == [[0]]  # logits 1, 1, 1


def test_argmax_autocast_casts_both_inputs() -> None:
    """Under autocast: the inputs cast to bf16, the logits still float32 (the reference turns autocast off for them)."""
    h, w, _ = _inputs(2, 40, 16, 50, torch.float32, seed=3)
    want = reference_linear_argmax(h.bfloat16(), w.bfloat16())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for fn in (fused_linear_argmax, reference_linear_argmax):
            assert torch.equal(fn(h, w), want), fn.__name__


def test_argmax_runs_without_autograd_and_handles_empty_rows() -> None:
    h, w, _ = _inputs(2, 6, 4, 10, torch.float32)
    got = fused_linear_argmax(h.requires_grad_(True), w.requires_grad_(True))
    assert got.dtype == torch.int64 and not got.requires_grad
    assert fused_linear_argmax(h[:, :0], w).shape == (2, 0)


@pytest.mark.parametrize("fn", [fused_linear_argmax, reference_linear_argmax])
@pytest.mark.parametrize("changes, error, message", [b for b in BAD if "targets" not in b[0]])
def test_argmax_validation_errors(fn, changes: dict, error: type, message: str) -> None:
    args = _bad(**changes)
    del args["targets"]
    with pytest.raises(error, match=message):
        fn(**args)


def test_import_without_triton_loads_no_sympy_and_falls_back() -> None:
    """``triton`` made unimportable: the module imports, loads no sympy, and the fused function is the reference."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["triton"] = None  # `import triton` now raises ImportError
        import torch
        from mqarkit.gpu.frontier.kernels import fused_head
        assert fused_head.triton is None and "sympy" not in sys.modules
        h = torch.randn(2, 5, 3, dtype=torch.float64)
        w = torch.randn(2, 3, 4, dtype=torch.float64)
        t = torch.tensor([0, 3, 1, 2, 3])
        a = fused_head.fused_linear_cross_entropy(h, w, t)
        b = fused_head.reference_linear_cross_entropy(h, w, t)
        assert a.item() == b.item(), (a, b)
        assert torch.equal(fused_head.fused_linear_argmax(h, w), fused_head.reference_linear_argmax(h, w))
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# ---------------------------------------------------------------------------------------------------------------------
# The Triton kernels under the interpreter (CPU tensors)
# ---------------------------------------------------------------------------------------------------------------------

# Each script runs in a fresh interpreter (the `interpreted` fixture of conftest.py); the prelude of each.
_INTERPRETER_PRELUDE = textwrap.dedent(
    """
    import torch

    from mqarkit.gpu.frontier.kernels import fused_head
    from mqarkit.tolerances import assert_close

    assert fused_head._INTERPRETED, "the kernels were not defined in interpreter mode"
    """
)

_INTERPRETER_SCRIPT = _INTERPRETER_PRELUDE + textwrap.dedent(
    """
    def run(fn, h, w, t, scale):
        h = h.detach().clone().requires_grad_(True)
        w = w.detach().clone().requires_grad_(True)
        loss = fn(h, w, t)
        (scale * loss).backward()
        return loss.detach(), h.grad, w.grad, loss.grad_fn

    for r, m, d, c, transposed in [(2, 37, 48, 300, False), (1, 5, 16, 64, False), (2, 37, 48, 300, True)]:
        gen = torch.Generator().manual_seed(r * 1000 + m + d + c)
        h = torch.randn(r, m, d, generator=gen)
        w = torch.randn(r, d, c, generator=gen) / d**0.5
        if transposed:  # w with strides (c·d, 1, d): the kernels take strides, not contiguous copies
            w = w.transpose(1, 2).contiguous().transpose(1, 2)
        t = torch.randint(0, c, (m,), generator=gen)
        *got, fn = run(fused_head.fused_linear_cross_entropy, h, w, t, 0.7)
        *want, _ = run(fused_head.reference_linear_cross_entropy, h, w, t, 0.7)
        assert type(fn).__name__ == "_FusedLinearCrossEntropyBackward", fn  # the kernels ran, not the fallback
        for name, a, e in zip(("value", "dh", "dw"), got, want):
            assert a.dtype == e.dtype == torch.float32, (name, a.dtype)
            # The interpreter's tl.dot is a float32 NumPy matmul, so the float32 tolerance applies as is.
            assert_close(a, e, dtype="float32", context=f"{name} at R={r}, M={m}, d={d}, c={c}")
    print("ok")
    """
)


_INTERPRETER_ARGMAX_SCRIPT = _INTERPRETER_PRELUDE + textwrap.dedent(
    """
    launches = []  # grids of _argmax_kernel launches: the kernel ran, not the fallback
    kernel = fused_head._argmax_kernel

    class Counting:
        def __getitem__(self, grid):
            launches.append(grid)
            return kernel[grid]

    fused_head._argmax_kernel = Counting()

    def check(h, w, context, explicit=None):
        n = len(launches)
        got = fused_head.fused_linear_argmax(h, w)
        assert len(launches) == n + 1, f"{context}: the kernel did not run"
        want = fused_head.reference_linear_argmax(h, w) if explicit is None else explicit
        assert got.dtype == torch.int64 and got.shape == want.shape, (context, got.dtype, got.shape)
        bad = (got != want).nonzero().tolist()
        assert not bad, f"{context}: {len(bad)} rows differ, first {bad[:5]}"

    # random float32 inputs; sizes not multiples of the blocks (BM = 64, BN = 128, BD = 64 at d = 48); w transposed
    for r, m, d, c, transposed in [(2, 37, 48, 300, False), (1, 5, 16, 64, False), (2, 70, 48, 300, True)]:
        gen = torch.Generator().manual_seed(r * 1000 + m + d + c)
        h = torch.randn(r, m, d, generator=gen)
        w = torch.randn(r, d, c, generator=gen) / d**0.5
        if transposed:  # strides (c·d, 1, d)
            w = w.transpose(1, 2).contiguous().transpose(1, 2)
        check(h, w, f"random R={r}, M={m}, d={d}, c={c}")

    # ties: small integers make every logit exact in float32 (any summation order), so equal logits are exactly
    # equal; a sparse h makes many rows' maxima tied; columns duplicated within a tile and across tiles (BN = 128)
    gen = torch.Generator().manual_seed(7)
    r, m, d, c = 2, 37, 48, 300
    h = (torch.rand(r, m, d, generator=gen) < 0.1).float() * torch.randint(1, 3, (r, m, d), generator=gen)
    w = torch.randint(-1, 2, (r, d, c), generator=gen).float()
    w[:, :, 200] = w[:, :, 3]  # a later tile's copy of an earlier tile's column
    w[:, :, 299] = w[:, :, 130]  # the last (partial) tile
    w[:, :, 131] = w[:, :, 130]  # within a tile
    z = torch.bmm(h.double(), w.double())  # (R, M, c) exact
    first = (z == z.amax(-1, keepdim=True)).int().argmax(-1)  # first index of the max, independently of torch.argmax
    assert int(((z == z.amax(-1, keepdim=True)).sum(-1) > 1).sum()) > r * m // 2, "too few tied rows to test"
    check(h, w, "ties", explicit=first)
    check(h, torch.zeros(r, d, c), "all logits equal", explicit=torch.zeros(r, m, dtype=torch.int64))
    # every valid logit negative: the columns past c (zero if unmasked) must not win
    check(h.abs() + 1, -(w.abs() + 1), "all negative")
    print("ok")
    """
)


@pytest.mark.skipif(not HAS_TRITON, reason="needs triton (the interpreter runs the kernels on CPU tensors)")
def test_kernels_under_triton_interpreter_equal_reference_float32(interpreted) -> None:
    interpreted(_INTERPRETER_SCRIPT, timeout=300, env={"MQARKIT_FUSED_HEAD": "1"})


@pytest.mark.skipif(not HAS_TRITON, reason="needs triton (the interpreter runs the kernels on CPU tensors)")
def test_argmax_kernel_under_triton_interpreter_equals_reference_and_takes_first_of_ties(interpreted) -> None:
    interpreted(_INTERPRETER_ARGMAX_SCRIPT, timeout=300, env={"MQARKIT_FUSED_HEAD": "1"})


# ---------------------------------------------------------------------------------------------------------------------
# The compiled kernels on a CUDA GPU
# ---------------------------------------------------------------------------------------------------------------------


def _needs_kernels() -> None:
    if not HAS_TRITON:
        pytest.skip("needs triton")
    if os.environ.get("MQARKIT_FUSED_HEAD") == "0":
        pytest.skip("MQARKIT_FUSED_HEAD=0 disables the kernels")


@pytest.mark.gpu
@pytest.mark.parametrize("d", [48, 64])
def test_gpu_bf16_equals_float32_reference(d: int) -> None:
    _needs_kernels()
    h, w, targets = _inputs(3, 1000, d, 8192, torch.bfloat16, device="cuda", seed=d)
    loss, dh, dw = _value_and_grads(fused_linear_cross_entropy, h, w, targets)
    want, want_dh, want_dw = _value_and_grads(reference_linear_cross_entropy, h.float(), w.float(), targets)
    assert loss.dtype == torch.float32 and dh.dtype == dw.dtype == torch.bfloat16
    assert_close(loss, want, dtype="bfloat16", context="value")
    assert_close(dh, want_dh, dtype="bfloat16", context="dh")
    assert_close(dw, want_dw, dtype="bfloat16", context="dw")


@pytest.mark.gpu
@pytest.mark.parametrize("d", [48, 64, 128])
def test_gpu_float32_as_accurate_as_torch_float32(d: int) -> None:
    """Float32 inputs, full-precision tl.dot: the value at the float32 tolerance; every output no less accurate
    (against float64) than torch's own float32 path, within a factor of 4.

    Why not assert_close(float32) on the gradients: ``dw[r, k, j] = Σ_m h[r, m, k]·p[r, m, j]`` sums 1000 terms of size
    O(1) (the ``−1`` of the target) that cancel down to O(1e-2), so float32 rounding of *either* side (seen on an
    H100: 2.4e-6 on 0.0344, rtol 7e-5, for 9 of 3.1M elements) exceeds ``rtol·|dw|``; the float64 comparison is the
    honest check.
    """
    _needs_kernels()
    h, w, targets = _inputs(3, 1000, d, 8192, torch.float32, device="cuda", seed=d + 1)
    assert not torch.backends.cuda.matmul.allow_tf32  # both sides full float32 (tl.dot input_precision="ieee")
    got = _value_and_grads(fused_linear_cross_entropy, h, w, targets)
    ours = _value_and_grads(reference_linear_cross_entropy, h, w, targets)
    exact = _value_and_grads(reference_linear_cross_entropy, h.double(), w.double(), targets)
    assert_close(got[0], ours[0], dtype="float32", context="value")
    for name, a, t, e in zip(("value", "dh", "dw"), got, ours, exact):
        assert a.dtype == t.dtype == torch.float32
        err_fused = (a.double() - e).abs().max().item()
        err_torch = (t.double() - e).abs().max().item()
        floor = 2.0**-23 * e.abs().max().item()  # one float32 ulp of the largest entry
        assert err_fused <= 4 * err_torch + floor, (name, err_fused, err_torch, floor)


@pytest.mark.gpu
def test_gpu_awkward_sizes_and_strides() -> None:
    _needs_kernels()
    h, w, targets = _inputs(2, 37, 48, 300, torch.float32, device="cuda")
    w = w.transpose(1, 2).contiguous().transpose(1, 2)  # strides (c·d, 1, d)
    got = _value_and_grads(fused_linear_cross_entropy, h, w, targets)
    want = _value_and_grads(reference_linear_cross_entropy, h, w, targets)
    for name, a, e in zip(("value", "dh", "dw"), got, want):
        assert_close(a, e, dtype="float32", context=name)


@pytest.mark.gpu
def test_gpu_autocast_with_float32_weights() -> None:
    """The training use: float32 leaves under bf16 autocast; gradients come back float32 through the casts."""
    _needs_kernels()
    h, w, targets = _inputs(2, 500, 64, 8192, torch.float32, device="cuda", seed=3)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss, dh, dw = _value_and_grads(fused_linear_cross_entropy, h, w, targets)
    want, want_dh, want_dw = _value_and_grads(
        reference_linear_cross_entropy, h.bfloat16().float(), w.bfloat16().float(), targets
    )
    assert dh.dtype == dw.dtype == torch.float32
    assert_close(loss, want, dtype="bfloat16", context="value")
    assert_close(dh, want_dh, dtype="bfloat16", context="dh")
    assert_close(dw, want_dw, dtype="bfloat16", context="dw")


@pytest.mark.gpu
def test_gpu_env_var_selects_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    h, w, targets = _inputs(2, 10, 16, 64, torch.float32, device="cuda")
    h.requires_grad_(True)
    monkeypatch.setenv("MQARKIT_FUSED_HEAD", "0")
    loss = fused_linear_cross_entropy(h, w, targets)
    assert type(loss.grad_fn).__name__ != "_FusedLinearCrossEntropyBackward"
    assert_close(loss, reference_linear_cross_entropy(h, w, targets), dtype="float32", context="value")


def _assert_argmax_agrees(got: torch.Tensor, h: torch.Tensor, w: torch.Tensor) -> None:
    """``got (R, M)`` equals the float32 reference on every row whose top two float32 logits are more than
    ``1e-3 · std`` of the row's logits apart, and such rows are >= 99% (float32 rounding is ~1e-6 of that scale).

    The scale is the row's spread, not its top logit: the gap between the top two of c = 8192 Gaussian logits is about
    Exp(mean 0.24 std), so ``1e-3 · |top1|`` (top1 ≈ 3.8 std) would leave ~1.6% of the rows undecided.
    """
    z = torch.bmm(h.float(), w.float())  # (R, M, c)
    top2 = z.topk(2, dim=-1).values  # (R, M, 2)
    clear = top2[..., 0] - top2[..., 1] > 1e-3 * z.std(-1)  # (R, M)
    want = z.argmax(-1)
    assert torch.equal(want, reference_linear_argmax(h, w))
    assert got.dtype == torch.int64 and got.shape == want.shape
    assert clear.float().mean().item() >= 0.99, clear.float().mean().item()
    bad = ((got != want) & clear).nonzero().tolist()
    assert not bad, f"{len(bad)} clear rows differ, first {bad[:5]}"


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("d", [48, 64, 128])
def test_gpu_argmax_equals_reference(d: int, dtype: torch.dtype) -> None:
    _needs_kernels()
    h, w, _ = _inputs(3, 1000, d, 8192, dtype, device="cuda", seed=d + 2)
    assert not torch.backends.cuda.matmul.allow_tf32  # float32: full-precision tl.dot and bmm
    _assert_argmax_agrees(fused_linear_argmax(h, w), h, w)


@pytest.mark.gpu
def test_gpu_argmax_awkward_sizes_strides_and_ties() -> None:
    """Sizes not multiples of the blocks, transposed ``w``; exact ties (small integers: exact in bf16 and float32)."""
    _needs_kernels()
    h, w, _ = _inputs(2, 37, 48, 300, torch.float32, device="cuda")
    w = w.transpose(1, 2).contiguous().transpose(1, 2)  # strides (c·d, 1, d)
    assert torch.equal(fused_linear_argmax(h, w), reference_linear_argmax(h, w))
    gen = torch.Generator().manual_seed(5)
    hi = torch.randint(-2, 3, (2, 37, 48), generator=gen).cuda()
    wi = torch.randint(-2, 3, (2, 48, 300), generator=gen).cuda()
    wi[:, :, 200] = wi[:, :, 3]
    for dtype in (torch.bfloat16, torch.float32):
        got = fused_linear_argmax(hi.to(dtype), wi.to(dtype))
        assert torch.equal(got, torch.bmm(hi.double(), wi.double()).argmax(-1)), dtype


@pytest.mark.gpu
def test_gpu_argmax_autocast_and_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    """The evaluation use: float32 leaves under bf16 autocast; ``MQARKIT_FUSED_HEAD=0`` gives the reference."""
    _needs_kernels()
    h, w, _ = _inputs(2, 500, 64, 8192, torch.float32, device="cuda", seed=4)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        got = fused_linear_argmax(h.requires_grad_(True), w.requires_grad_(True))
        monkeypatch.setenv("MQARKIT_FUSED_HEAD", "0")
        ref = fused_linear_argmax(h, w)
    assert torch.equal(ref, reference_linear_argmax(h.bfloat16(), w.bfloat16()))
    _assert_argmax_agrees(got, h.bfloat16(), w.bfloat16())
