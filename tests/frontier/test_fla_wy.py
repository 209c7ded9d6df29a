"""Our plain-torch form of fla's gated ``prepare_wy_repr_bwd`` (:mod:`mqarkit.gpu.frontier.kernels.fla_wy`): against
the gradient of the WY representation taken by autograd (float64), against fla's own Triton kernel run by Triton's
interpreter, and how it is registered with fla."""

from __future__ import annotations

import importlib.util
import math
import os

import pytest
import torch

from mqarkit.gpu.frontier.kernels import fla_wy
from mqarkit.tolerances import assert_close
from tests.frontier.conftest import ROOT


def _inputs(t: int, chunk: int, *, b=2, h=3, k=5, v=4, decay=0.5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    keys = torch.nn.functional.normalize(torch.randn(b, t, h, k, generator=gen, dtype=torch.float64), dim=-1)
    values = torch.randn(b, t, h, v, generator=gen, dtype=torch.float64)
    beta = torch.rand(b, t, h, generator=gen, dtype=torch.float64)
    steps = -torch.rand(b, t, h, generator=gen, dtype=torch.float64) * decay
    natural = torch.cat([s.cumsum(1) for s in steps.split(chunk, dim=1)], dim=1)  # cumulated inside each chunk
    dw = torch.randn(b, t, h, k, generator=gen, dtype=torch.float64)
    du = torch.randn(b, t, h, v, generator=gen, dtype=torch.float64)
    return keys, values, beta, natural, dw, du


@pytest.mark.parametrize(("t", "chunk", "decay"), [(16, 8, 0.5), (23, 8, 0.5), (19, 16, 4.0), (5, 8, 0.0)])
def test_torch_form_is_the_gradient_of_the_wy_representation(t, chunk, decay):
    """Whole and ragged last chunks, strong decays (e^{−4} a step) and none: the form, given the forward's ``A``,
    equals autograd through ``A = (I + L)⁻¹`` formed row by row (float64)."""
    k, v, beta, natural, dw, du = _inputs(t, chunk, decay=decay)
    _, _, a = fla_wy.naive_wy_forward(k, v, beta, natural, chunk)
    g = natural / math.log(2)
    ours = fla_wy.chunk_wy_backward(k, v, beta, a, dw, du, g)
    reference = fla_wy.naive_wy_backward(k, v, beta, dw, du, g, chunk)
    for name, got, want in zip(("dk", "dv", "dβ", "dg"), ours, reference, strict=True):
        assert got.dtype == want.dtype == torch.float64
        assert_close(got, want, dtype="float64", context=name)


def test_the_naive_inverse_is_the_inverse():
    """``naive_wy_forward``'s ``A`` times ``I + L`` is the identity, chunk by chunk (``L`` formed from its
    definition)."""
    chunk = 8
    k, v, beta, natural, _, _ = _inputs(20, chunk)
    w, u, a = fla_wy.naive_wy_forward(k, v, beta, natural, chunk)
    for start in range(0, 20, chunk):
        end = min(start + chunk, 20)
        kc, bc, gc = k[:, start:end], beta[:, start:end], natural[:, start:end]
        m = torch.einsum("bihk,bjhk->bhij", kc, kc) * bc.transpose(1, 2)[..., None]
        lower = torch.ones(end - start, end - start, dtype=torch.bool).tril(-1)
        gate = torch.exp(gc.transpose(1, 2)[..., :, None] - gc.transpose(1, 2)[..., None, :])
        ell = torch.where(lower, m * gate, 0)
        ac = a[:, start:end, :, : end - start].transpose(1, 2)  # (B, H, C', C')
        eye = torch.eye(end - start, dtype=torch.float64)
        assert_close(ac @ (eye + ell), eye.expand_as(ac), dtype="float64", context="A (I + L)")
        x = kc * (bc * torch.exp(gc))[..., None]
        assert_close(w[:, start:end], torch.einsum("bhij,bjhk->bihk", ac, x), dtype="float64", context="w")


def test_outputs_keep_flas_dtypes():
    """bf16 ``k, v, β``, float32 ``g``: the gradients come back as fla's kernel writes them (``dk, dv, dβ`` in the
    inputs' dtypes, ``dg`` in ``g``'s), computed in float32."""
    k, v, beta, natural, dw, du = _inputs(12, 8)
    _, _, a = fla_wy.naive_wy_forward(k, v, beta, natural, 8)
    half = [x.to(torch.bfloat16) for x in (k, v, beta, a, dw, du)]
    dk, dv, db, dg = fla_wy.chunk_wy_backward(*half, (natural / math.log(2)).float())
    assert (dk.dtype, dv.dtype, db.dtype, dg.dtype) == (torch.bfloat16,) * 3 + (torch.float32,)


def test_verifier_takes_only_the_calls_it_computes():
    k, v, beta, natural, dw, du = _inputs(8, 8)
    a = torch.zeros(*beta.shape, 8, dtype=torch.float64)
    call = dict(k=k, v=v, beta=beta, A=a, dw=dw, du=du)
    assert fla_wy.serves(**call, g=natural) == (True, None)
    assert fla_wy.serves(**call)[0] is False  # no decay: the ungated rule's call is fla's
    assert fla_wy.serves(**call, g=natural, cu_seqlens=torch.tensor([0, 8]))[0] is False
    wider = dict(call, v=torch.cat([v, v], dim=2))
    assert fla_wy.serves(**wider, g=natural)[0] is False
    # positional, as fla's dispatcher may pass them
    assert fla_wy.serves(k, v, beta, a, dw, du, natural) == (True, None)


def test_registered_with_fla_its_dispatch_returns_our_form():
    """With fla installed (not in CI: fla is the ``gpu`` extra), the dispatched gated ``prepare_wy_repr_bwd`` returns
    our form's result for a call it serves (CPU tensors: fla's own kernel could not run here), as the gated delta
    rule's route where fla refuses installs it; the ungated call (no ``g``) still reaches fla's own function."""
    pytest.importorskip("fla")
    from fla.ops.gated_delta_rule.wy_fast import prepare_wy_repr_bwd

    fla_wy.install_torch_backend()
    k, v, beta, natural, dw, du = _inputs(12, 8, seed=3)
    _, _, a = fla_wy.naive_wy_forward(k, v, beta, natural, 8)
    g = natural / math.log(2)
    got = prepare_wy_repr_bwd(k=k, v=v, beta=beta, A=a, dw=dw, du=du, g=g)
    for x, y in zip(got, fla_wy.chunk_wy_backward(k, v, beta, a, dw, du, g), strict=True):
        assert torch.equal(x, y)
    assert fla_wy.serves(k, v, beta, a, dw, du)[0] is False  # so fla's Triton function would serve it


@pytest.mark.skipif(
    importlib.util.find_spec("fla") is None or importlib.util.find_spec("triton") is None,
    reason="needs fla and triton (fla's own kernel runs under Triton's interpreter on CPU tensors)",
)
def test_our_form_equals_flas_own_kernel_under_the_interpreter(interpreted):
    """fla's Triton gated ``prepare_wy_repr_bwd_kernel`` (called directly, not through its registry) run by Triton's
    interpreter, where no GPU's code generation is involved, against our form: float32, a ragged last chunk, fla's
    chunk of 64, ``A`` from the forward's definition. (Not in CI: fla is the ``gpu`` extra.)"""
    interpreted(
        """
        import inspect
        import math
        import torch
        import triton.runtime.autotuner as autotuner
        from fla.ops.gated_delta_rule import wy_fast
        from mqarkit.gpu.frontier.kernels.fla_wy import chunk_wy_backward, naive_wy_forward
        from mqarkit.tolerances import assert_close_scaled

        autotuner.Autotuner._bench = lambda self, *a, config=None, **k: [0.0, 0.0, 0.0]  # no device to time on
        gen = torch.Generator().manual_seed(0)
        b, t, h, k, v, c = 2, 100, 2, 16, 32, 64
        key = torch.nn.functional.normalize(torch.randn(b, t, h, k, generator=gen), dim=-1)
        val, du = (torch.randn(b, t, h, v, generator=gen) for _ in range(2))
        dw = torch.randn(b, t, h, k, generator=gen)
        beta = torch.rand(b, t, h, generator=gen)
        steps = -torch.rand(b, t, h, generator=gen) * 0.3
        natural = torch.cat([s.cumsum(1) for s in steps.split(c, dim=1)], dim=1)
        _, _, a = naive_wy_forward(key.double(), val.double(), beta.double(), natural.double(), c)
        a, g = a.float(), natural / math.log(2)
        call = dict(k=key, v=val, beta=beta, A=a, dw=dw, du=du, g=g)
        theirs = inspect.unwrap(wy_fast.prepare_wy_repr_bwd)(**call)  # the Triton default, past fla's dispatcher
        ours = chunk_wy_backward(**call)
        for name, x, y in zip(("dk", "dv", "db", "dg"), theirs, ours, strict=True):
            assert x.dtype == y.dtype, (name, x.dtype, y.dtype)
            assert_close_scaled(y, x, dtype="float32", context=name)
        print("ok")
        """,
        env={"PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), ROOT) if p)},
    )


@pytest.mark.gpu
def test_where_fla_refuses_gated_delta_net_trains_through_both_forms(monkeypatch):
    """On a GPU where fla refuses its gated kernel (Hopper, triton 3.4–3.7.1), by default (no
    ``MQARKIT_FLA_GATED_DELTA_RULE``) Gated DeltaNet's bf16 step runs fla's op with our forms of ``chunk_bwd_dqkwg``
    and of the gated ``prepare_wy_repr_bwd`` in its backward: the path that ``test_families_cuda.py``'s bf16 test of
    the family checks against the naive reference."""
    from cuda_knobs import bf16_mixer_backward

    from mqarkit.gpu.frontier.kernels import fla_common, fla_dqkwg

    pytest.importorskip("fla")
    if fla_common.gated_backward() != "torch":
        pytest.skip(f"fla's gated backward here: {fla_common.gated_backward()}")
    monkeypatch.delenv("MQARKIT_FLA_GATED_DELTA_RULE", raising=False)
    calls = []
    for module, name in ((fla_dqkwg, "chunk_dqkwg"), (fla_wy, "chunk_wy_backward")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    grad = bf16_mixer_backward("gated_delta_net")
    assert {"chunk_dqkwg", "chunk_wy_backward"} <= set(calls) and torch.isfinite(grad).all()
