"""The torch form of fla's gated ``chunk_bwd_dqkwg`` (``kernels/fla_dqkwg.py``): equal to its naive form, and equal to
the gradients autograd takes of the chunked forward it belongs to (float64, CPU; fla not needed); the verifier's
answers; and, where fla is installed, its registration in fla's backend registry (the dispatched function then returns
our form's result)."""

from __future__ import annotations

import importlib.util
import math
import os

import pytest
import torch

from mqarkit.gpu.frontier.kernels.fla_dqkwg import chunk_dqkwg, fla_chunk_bwd_dqkwg, naive_chunk_dqkwg, serves
from mqarkit.tolerances import assert_close

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

B, H, K, V = 2, 3, 5, 4
SCALE = 0.7


def _inputs(t: int, chunk: int, seed: int) -> dict[str, torch.Tensor]:
    """float64 inputs in fla's layout; ``g`` cumulated inside each chunk (natural log units, ≤ 0, non-increasing)."""
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    steps = -torch.rand(B, t, H, generator=gen, dtype=torch.float64) * 0.4
    cum = torch.cat([c.cumsum(1) for c in steps.split(chunk, dim=1)], dim=1)
    return {"q": rnd(B, t, H, K), "k": rnd(B, t, H, K), "v": rnd(B, t, H, V), "w": rnd(B, t, H, K), "G": cum}


def _chunked_forward(x: dict[str, torch.Tensor], chunk: int, delta: bool, seed: int):
    """The forward ``chunk_dqkwg`` is the backward of, chunk by chunk, with autograd: the state entering each chunk
    ``h[i]``, its values (``v − w h[i]`` with ``delta``: the delta rule's corrected values), the outputs, the state
    leaving it; the loss is a random linear function of the outputs and of the last state. Returns what the kernel
    takes (``do``, ``h``, ``dh``, the values, ``dv``) and the leaves' gradients."""
    leaves = {n: t.clone().requires_grad_() for n, t in x.items()}
    q, k, v, w, G = (leaves[n] for n in ("q", "k", "v", "w", "G"))
    t = q.shape[1]
    gen = torch.Generator().manual_seed(seed + 1)
    state = torch.zeros(B, H, K, V, dtype=torch.float64)
    outputs, entering, leaving, values = [], [], [], []
    for start in range(0, t, chunk):
        end = min(start + chunk, t)
        qc, kc, gc = q[:, start:end], k[:, start:end], G[:, start:end]
        vc = v[:, start:end]
        if delta:
            vc = vc - torch.einsum("bthk,bhkv->bthv", w[:, start:end], state)
        vc.retain_grad()
        entering.append(state)
        values.append(vc)
        gap = gc[:, :, None, :] - gc[:, None, :, :]  # (B, t, s, H)
        keep = torch.ones(end - start, end - start, dtype=torch.bool).tril()[None, :, :, None]
        pair = torch.einsum("bthk,bshk->btsh", qc, kc) * torch.exp(gap.masked_fill(~keep, float("-inf")))
        o = torch.exp(gc)[..., None] * torch.einsum("bthk,bhkv->bthv", qc, state)
        o = SCALE * (o + torch.einsum("btsh,bshv->bthv", pair, vc))
        outputs.append(o)
        to_end = torch.exp(gc[:, -1:] - gc)  # (B, C, H)
        own = torch.einsum("bshk,bshv->bhkv", kc * to_end[..., None], vc)
        state = torch.exp(gc[:, -1])[..., None, None] * state + own
        state.retain_grad()
        leaving.append(state)
    o = torch.cat(outputs, dim=1)
    do = torch.randn(o.shape, generator=gen, dtype=torch.float64)
    d_last = torch.randn(state.shape, generator=gen, dtype=torch.float64)
    ((o * do).sum() + (state * d_last).sum()).backward()
    kernel_in = {
        "do": do,
        "h": torch.stack([s.detach() for s in entering], dim=1),
        "dh": torch.stack([s.grad for s in leaving], dim=1),
        "v": torch.cat([c.detach() for c in values], dim=1),
        "dv": torch.cat([c.grad for c in values], dim=1) if delta else None,
    }
    return kernel_in, {n: leaves[n].grad for n in ("q", "k", "w", "G")}


@pytest.mark.parametrize("t, chunk", [(16, 8), (37, 16), (5, 8)])
@pytest.mark.parametrize("delta", [False, True])
def test_torch_form_is_the_gradient_of_the_chunked_forward(t, chunk, delta):
    """``dq, dk`` (complete: ``q, k`` reach the loss only through the chunk's outputs and the state leaving it),
    ``dg`` (the gradient of the cumulated decays ``G``: ``g = G / ln 2``) and, for the delta rule, ``dw`` equal
    autograd's, over whole, ragged and single chunks."""
    x = _inputs(t, chunk, seed=t + chunk)
    got_in, want = _chunked_forward(x, chunk, delta, seed=t)
    dq, dk, dw, dg = chunk_dqkwg(
        x["q"], x["k"], got_in["v"], got_in["do"], got_in["h"], got_in["dh"], x["G"] / math.log(2), SCALE, chunk,
        dv=got_in["dv"],
    )  # fmt: skip
    assert_close(dq, want["q"], dtype=torch.float64)
    assert_close(dk, want["k"], dtype=torch.float64)
    assert_close(dg, want["G"], dtype=torch.float64)
    if delta:
        assert_close(dw, want["w"], dtype=torch.float64)
    else:
        assert dw is None


@pytest.mark.parametrize("t, chunk", [(21, 8), (8, 8)])
def test_torch_form_equals_its_naive_form(t, chunk):
    """The batched form against the loops beside it (float64), ``dv`` given."""
    x = _inputs(t, chunk, seed=3)
    gen = torch.Generator().manual_seed(4)
    nt = math.ceil(t / chunk)
    h, dh = (torch.randn(B, nt, H, K, V, generator=gen, dtype=torch.float64) for _ in range(2))
    do, dv = (torch.randn(B, t, H, V, generator=gen, dtype=torch.float64) for _ in range(2))
    args = (x["q"], x["k"], x["v"], do, h, dh, x["G"] / math.log(2), SCALE, chunk)
    for got, want in zip(chunk_dqkwg(*args, dv=dv), naive_chunk_dqkwg(*args, dv=dv), strict=True):
        assert_close(got, want, dtype=torch.float64)


def test_outputs_keep_flas_dtypes():
    """``dq, dk`` in the inputs' (half) dtype, ``dw`` in ``dv``'s, ``dg`` float32, as fla's kernel allocates them."""
    x = _inputs(12, 8, seed=5)
    q, k, v = (x[n].to(torch.bfloat16) for n in ("q", "k", "v"))
    h = torch.zeros(B, 2, H, K, V)
    dq, dk, dw, dg = chunk_dqkwg(q, k, v, v, h, h, x["G"].float(), 1.0, 8, dv=v)
    assert (dq.dtype, dk.dtype, dw.dtype, dg.dtype) == (torch.bfloat16, torch.bfloat16, torch.bfloat16, torch.float32)


def test_verifier_takes_only_the_calls_it_computes():
    x = _inputs(8, 8, seed=6)
    q, k, v, g = x["q"], x["k"], x["v"], x["G"]
    call = {"q": q, "k": k, "v": v, "do": v, "h": None, "dh": None, "g": g, "scale": 1.0}
    assert serves(**call) == (True, None)
    assert serves(q, k, v, v, None, None, g=g, scale=1.0) == (True, None)  # positional, as fla may pass them
    for change in [
        {"g": None},  # no decay: fla's own kernel is not refused
        {"g_gamma": g[0, 0]},
        {"scale": None},
        {"state_v_first": True},  # V × K states
        {"cu_seqlens": torch.tensor([0, 8])},  # variable lengths
        {"v": torch.cat([v, v], dim=2)},  # more value than query heads
    ]:
        accepted, reason = serves(**(call | change))
        assert not accepted and reason


def test_called_as_fla_calls_it_dv_counts_only_with_w():
    """fla's kernel reads ``dv`` only where the delta rule's ``w`` is given: so does the adapter."""
    x = _inputs(12, 8, seed=9)
    gen = torch.Generator().manual_seed(10)
    h, dh = (torch.randn(B, 2, H, K, V, generator=gen, dtype=torch.float64) for _ in range(2))
    do, dv = (torch.randn(B, 12, H, V, generator=gen, dtype=torch.float64) for _ in range(2))
    g = x["G"] / math.log(2)
    call = {"q": x["q"], "k": x["k"], "v": x["v"], "do": do, "h": h, "dh": dh, "g": g, "scale": SCALE, "chunk_size": 8}
    plain = chunk_dqkwg(x["q"], x["k"], x["v"], do, h, dh, g, SCALE, 8)
    delta = chunk_dqkwg(x["q"], x["k"], x["v"], do, h, dh, g, SCALE, 8, dv=dv)
    for got, want in (
        (fla_chunk_bwd_dqkwg(**call, dv=dv), plain),
        (fla_chunk_bwd_dqkwg(**call, w=x["w"], dv=dv), delta),
    ):
        for a, b in zip(got, want, strict=True):
            assert (a is None and b is None) or torch.equal(a, b)


def test_registered_with_fla_its_dispatch_returns_our_form():
    """With fla installed (not in CI: fla is the ``gpu`` extra), the dispatched ``chunk_bwd_dqkwg`` returns our form's
    result for a call it serves (CPU tensors: fla's own kernel could not run here)."""
    pytest.importorskip("fla")
    from fla.ops.common.chunk_o import chunk_bwd_dqkwg

    from mqarkit.gpu.frontier.kernels.fla_dqkwg import install_torch_backend

    install_torch_backend()
    x = _inputs(12, 8, seed=7)
    gen = torch.Generator().manual_seed(8)
    h, dh = (torch.randn(B, 2, H, K, V, generator=gen, dtype=torch.float64) for _ in range(2))
    do = torch.randn(B, 12, H, V, generator=gen, dtype=torch.float64)
    g = x["G"] / math.log(2)
    got = chunk_bwd_dqkwg(q=x["q"], k=x["k"], v=x["v"], do=do, h=h, dh=dh, g=g, scale=SCALE, chunk_size=8)
    want = chunk_dqkwg(x["q"], x["k"], x["v"], do, h, dh, g, SCALE, 8)
    for a, b in zip(got, want, strict=True):
        assert (a is None and b is None) or torch.equal(a, b)


@pytest.mark.gpu
@pytest.mark.parametrize("family", ["mamba2"])
def test_where_fla_refuses_the_gated_families_train_through_our_form(family, monkeypatch):
    """On a GPU where fla refuses its gated kernel (Hopper, triton 3.4–3.7.1), Mamba-2's bf16 training step runs fla's
    op with this form in the backward: the path ``test_families_cuda.py``'s bf16 test of the family then checks
    against the naive reference. (Gated DeltaNet takes its plain-torch path there: ``test_fla_delta_op.py``.)"""
    from cuda_knobs import bf16_mixer_backward

    from mqarkit.gpu.frontier.kernels import fla_common, fla_dqkwg

    pytest.importorskip("fla")
    if fla_common.gated_backward() != "torch":
        pytest.skip(f"fla's gated backward here: {fla_common.gated_backward()}")
    calls = []
    original = fla_dqkwg.chunk_dqkwg
    monkeypatch.setattr(fla_dqkwg, "chunk_dqkwg", lambda *a, **k: calls.append(1) or original(*a, **k))
    grad = bf16_mixer_backward(family)
    assert calls and torch.isfinite(grad).all()


@pytest.mark.parametrize("family", ["mamba2", "gated_delta_net"])
def test_micro_batch_estimate_counts_our_form_where_it_serves(family, monkeypatch):
    """Where fla serves and our form computes its refused kernel, the family's per-example estimate covers the form's
    ``(C, C)`` tensors; where fla's own kernel serves, it does not change."""
    from mqarkit.gpu.frontier.families import family_class
    from mqarkit.gpu.frontier.kernels import fla_dqkwg
    from mqarkit.gpu.frontier.kernels.fla_wy import WY_PAIR_TENSORS

    knobs = {"mamba2": {"d_state": 16}, "gated_delta_net": {"heads": 4, "head_dim": 16}}[family]
    runs, n = 3, 256
    mixer = family_class(family)(64, 256, [dict(knobs)] * runs, [torch.Generator().manual_seed(i) for i in range(runs)])
    heads = mixer.heads() if family == "mamba2" else 4
    monkeypatch.setattr(type(mixer), "fla_serves", lambda self, device, dtype: True)
    monkeypatch.setattr(fla_dqkwg, "gated_backward", lambda: "fla")
    own = mixer.intermediate_elements(n)
    monkeypatch.setattr(fla_dqkwg, "gated_backward", lambda: "torch")
    pairs = {"mamba2": fla_dqkwg.PAIR_TENSORS, "gated_delta_net": WY_PAIR_TENSORS}[family]  # its WY form holds more
    ours = pairs * runs * n * heads * fla_dqkwg.FLA_CHUNK
    assert own < ours == mixer.intermediate_elements(n)


@pytest.mark.skipif(
    importlib.util.find_spec("fla") is None or importlib.util.find_spec("triton") is None,
    reason="needs fla and triton (fla's own kernel runs under Triton's interpreter on CPU tensors)",
)
def test_our_form_equals_flas_own_kernel_under_the_interpreter(interpreted):
    """fla's Triton ``chunk_bwd_dqkwg`` (the gated kernel, not its registry: nothing is registered in the subprocess)
    run by Triton's interpreter, where no GPU's code generation is involved, against our form: float32, a ragged last
    chunk, with and without the delta rule's ``w``/``dv``. (Not in CI: fla is the ``gpu`` extra.)"""
    interpreted(
        """
        import math
        import torch
        import triton.runtime.autotuner as autotuner
        from fla.ops.common.chunk_o import chunk_bwd_dqkwg
        from mqarkit.gpu.frontier.kernels.fla_dqkwg import fla_chunk_bwd_dqkwg
        from mqarkit.tolerances import assert_close_scaled

        autotuner.Autotuner._bench = lambda self, *a, config=None, **k: [0.0, 0.0, 0.0]  # no device to time on
        gen = torch.Generator().manual_seed(0)
        b, t, h, k, v, c = 2, 100, 2, 16, 32, 64
        q, key, w = (torch.randn(b, t, h, k, generator=gen) for _ in range(3))
        val, do, dv = (torch.randn(b, t, h, v, generator=gen) for _ in range(3))
        state, dstate = (torch.randn(b, math.ceil(t / c), h, k, v, generator=gen) for _ in range(2))
        steps = -torch.rand(b, t, h, generator=gen) * 0.3
        g = torch.cat([s.cumsum(1) for s in steps.split(c, dim=1)], dim=1) / math.log(2)
        for delta in (False, True):
            call = dict(q=q, k=key, v=val, do=do, h=state, dh=dstate, g=g, scale=0.7, chunk_size=c)
            if delta:
                call |= dict(w=w, dv=dv)
            for name, a, b in zip(("dq", "dk", "dw", "dg"), chunk_bwd_dqkwg(**call), fla_chunk_bwd_dqkwg(**call)):
                assert (a is None) == (b is None) == (name == "dw" and not delta), name
                if a is not None:
                    assert a.dtype == b.dtype, (name, a.dtype, b.dtype)
                    assert_close_scaled(b, a, dtype="float32", context=f"{name} (w: {delta})")
        print("ok")
        """,
        env={"PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), ROOT) if p)},
    )
