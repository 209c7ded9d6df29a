"""What the tests of Mamba's two scan kernels share (``test_selective_scan_kernel.py``, the log-depth kernels;
``test_sequential_scan_kernel.py``, the sequential ones): their inputs, the padded-state and family checks run with
either kernels (named, so that a check's arguments pass to the interpreter's subprocess as text), and that
subprocess."""

from __future__ import annotations

import importlib.util
import os
from functools import partial

import pytest
import torch

from mqarkit.gpu.frontier.kernels.selective_scan import fused_selective_scan
from mqarkit.gpu.frontier.kernels.sequential_scan import sequential_selective_scan
from mqarkit.tolerances import assert_close

# The interpreted tests of both kernels' files: skipped where triton is not installed (CI and CPU machines may lack it)
needs_triton = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="needs triton (its interpreter runs the kernels on CPU tensors)"
)
NAMES = ("x", "dt", "a", "b", "c")
KERNELS = {
    "fused": fused_selective_scan,
    "sequential": sequential_selective_scan,
    "sequential in blocks of 2 states": partial(sequential_selective_scan, state_block=2),  # a run's blocks skipped
}
SWITCHES = {"fused": {}, "sequential": {"MQARKIT_SCAN": "sequential"}}  # what makes the Mamba family take each
TORCH_SCAN = {"MQARKIT_FUSED_SCAN": "0"}  # the family on the chunked torch scan


def scan_inputs(r: int, bsz: int, n: int, di: int, ns: int, device: str, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Scan inputs as the family makes them: ``Δ > 0``, ``A < 0`` (a different ``A`` per run)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(r, bsz, n, di, generator=g)
    dt = torch.rand(r, bsz, n, di, generator=g) * 0.5
    a = -torch.rand(r, di, ns, generator=g) * 3
    b, c = torch.randn(r, bsz, n, ns, generator=g), torch.randn(r, bsz, n, ns, generator=g)
    return tuple(t.to(device).requires_grad_() for t in (x, dt, a, b, c))


def compare_padded_states(kernels: str, device: str) -> None:
    """A stack whose runs have 2 and 5 of its 5 state indices (the first run's ``B, C`` zero beyond its 2, as the
    family's masked projections make them): with ``states`` the ``kernels`` give what they give without it, values
    and the gradients of ``x, Δ`` and of each run's own ``A, B, C``; the padding's gradients are 0."""
    scan = KERNELS[kernels]
    x, dt, a, b, c = scan_inputs(2, 3, 37, 10, 5, device, seed=6)
    with torch.no_grad():
        b[0, ..., 2:] = 0
        c[0, ..., 2:] = 0
    inputs = (x, dt, a, b, c)
    states = torch.tensor([2, 5], device=device)
    dy = torch.randn(2, 3, 37, 10, generator=torch.Generator().manual_seed(7)).to(device)
    padded, full = scan(*inputs, states), scan(*inputs)
    assert_close(padded, full, dtype="float32", context=f"y, {kernels}, padded states")
    for name, u, v in zip(NAMES, torch.autograd.grad(padded, inputs, dy), torch.autograd.grad(full, inputs, dy)):
        if name in ("a", "b", "c"):  # the padding's gradients are 0, and each run's own as without the states
            assert torch.equal(u[0][..., 2:], torch.zeros_like(u[0][..., 2:])), name
            u, v = u[0][..., :2], v[0][..., :2]
        assert_close(u, v, dtype="float32", context=f"d{name}, {kernels}, padded states")


def compare_family_paths(kernels: str, device: str) -> None:
    """A stack of Mamba runs with different ``d_state``: output and every parameter's gradient on the ``kernels``
    (their switches set) equal those on the chunked torch scan (``MQARKIT_FUSED_SCAN=0``)."""
    from mqarkit.gpu.frontier.families import family_class

    knobs = [{"d_state": 4}, {"d_state": 7}]
    mixer = family_class("mamba")(8, 32, knobs, [torch.Generator().manual_seed(i) for i in range(2)]).to(device)
    u = torch.randn(2, 3, 19, 8, generator=torch.Generator().manual_seed(5)).to(device)
    results = []
    for switches in (SWITCHES[kernels], TORCH_SCAN):
        before = {key: os.environ.get(key) for key in switches}
        os.environ.update(switches)
        try:
            mixer.zero_grad()
            y = mixer(u)
            (y * torch.linspace(-1, 1, y.numel(), device=device).view_as(y)).sum().backward()
        finally:
            for key, value in before.items():
                if value is None:
                    os.environ.pop(key)
                else:
                    os.environ[key] = value
        results.append((y.detach(), {k: p.grad.clone() for k, p in mixer.named_parameters() if p.grad is not None}))
    (y1, g1), (y0, g0) = results
    assert_close(y1, y0, dtype="float32", context=f"mamba output, {kernels} vs torch scan")
    assert g1.keys() == g0.keys() and len(g1) > 5
    for name in g1:
        assert_close(g1[name], g0[name], dtype="float32", context=f"mamba d{name}, {kernels} vs torch scan")


def run_under_interpreter(interpreted, kernels: str, test_module: str, check: str, *args: object) -> None:
    """``check(*args)``, a function of ``tests/frontier/<test_module>.py``, in a subprocess whose Triton kernels
    (those of ``kernels/<kernels>.py``) the interpreter runs."""
    interpreted(
        f"""
        import mqarkit.gpu.frontier.kernels.{kernels} as ks
        assert ks._INTERPRETED
        from tests.frontier.{test_module} import {check}
        {check}(*{args!r})
        print("ok")
        """
    )
