"""The opaque op around fla's (gated) delta rule (``kernels/fla_delta.py``): its values and gradients are those of the
call it wraps, it passes torch's custom-op checks, and a step that calls it compiles whole (no graph break).

fla's kernels need CUDA, so here the wrapped call (``_fla_forward``) is replaced by a plain-torch recurrence of the
same contract (folded layout, the delta rule token by token, ``scale = 1``); what is tested is the op's plumbing:
its fake, its autograd registration, its backward op. The GPU tests of the families run it over fla's kernels."""

from __future__ import annotations

import pytest
import torch

from mqarkit.gpu.frontier.families.delta_net import delta_update
from mqarkit.gpu.frontier.kernels import fla_delta
from mqarkit.tolerances import assert_close

RB, N, H, K, V = 3, 7, 2, 4, 5


def naive_delta_rule(q, k, v, beta, log_decay):
    """The contract of fla's op in its folded layout, one token at a time: ``q, k (RB, N, H, K)``, ``v (RB, N, H, V)``,
    ``beta, log_decay (RB, N, H)`` (``log_decay`` None: DeltaNet) -> ``o (RB, N, H, V)``."""
    state = q.new_zeros(q.shape[0], q.shape[2], q.shape[3], v.shape[-1])
    outputs = []
    for t in range(q.shape[1]):
        g = None if log_decay is None else log_decay[:, t]
        state, o = delta_update(state, q[:, t], k[:, t], v[:, t], beta[:, t], g)
        outputs.append(o)
    return torch.stack(outputs, dim=1)


@pytest.fixture
def naive_fla(monkeypatch):
    monkeypatch.setattr(fla_delta, "_fla_forward", naive_delta_rule)


def _inputs(gated: bool, seed: int = 0) -> list[torch.Tensor | None]:
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    k = rnd(RB, N, H, K)
    k = k / k.norm(dim=-1, keepdim=True)
    beta = torch.sigmoid(rnd(RB, N, H))
    log_decay = -torch.rand(RB, N, H, generator=gen, dtype=torch.float64) if gated else None
    return [rnd(RB, N, H, K), k, rnd(RB, N, H, V), beta, log_decay]


@pytest.mark.parametrize("gated", [False, True])
def test_op_values_and_gradients_are_those_of_the_wrapped_call(naive_fla, gated):
    inputs = _inputs(gated)
    do = torch.randn(RB, N, H, V, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    leaves_op = [None if t is None else t.clone().requires_grad_() for t in inputs]
    leaves_ref = [None if t is None else t.clone().requires_grad_() for t in inputs]
    out = fla_delta.fla_delta_rule_op(*leaves_op)
    ref = naive_delta_rule(*leaves_ref)
    assert out.is_contiguous() and out.shape == (RB, N, H, V)
    assert_close(out, ref, context="op value")
    (out * do).sum().backward()
    (ref * do).sum().backward()
    for name, a, b in zip(("q", "k", "v", "beta", "log_decay"), leaves_op, leaves_ref, strict=True):
        if a is not None:
            assert_close(a.grad, b.grad, context=f"d{name}")


@pytest.mark.parametrize("gated", [False, True])
def test_op_passes_torchs_custom_op_checks(naive_fla, gated):
    inputs = [None if t is None else t.requires_grad_() for t in _inputs(gated, seed=2)]
    torch.library.opcheck(fla_delta.fla_delta_rule_op, inputs)


def test_a_step_around_the_op_compiles_whole(naive_fla):
    """``fullgraph=True``: a graph break (what fla's own ``torch.compiler.disable``-d entry point makes) would raise."""

    def step(x, w, beta):
        q, k, v = (torch.nn.functional.silu(x @ w[i]).unflatten(-1, (H, K)) for i in range(3))
        k = k / k.norm(dim=-1, keepdim=True)
        o = fla_delta.fla_delta_rule_op(q.contiguous(), k.contiguous(), v.contiguous(), beta, None)
        return o.square().sum()

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(RB, N, 6, generator=gen, dtype=torch.float64)
    w = torch.randn(3, 6, H * K, generator=gen, dtype=torch.float64, requires_grad=True)
    beta = torch.sigmoid(torch.randn(RB, N, H, generator=gen, dtype=torch.float64))
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    loss = compiled(x, w, beta)
    (grad,) = torch.autograd.grad(loss, w)
    w_ref = w.detach().clone().requires_grad_()
    loss_ref = step(x, w_ref, beta)
    (grad_ref,) = torch.autograd.grad(loss_ref, w_ref)
    assert_close(loss, loss_ref, context="compiled loss")
    assert_close(grad, grad_ref, context="compiled gradient")


@pytest.mark.parametrize("who", ["fla", "torch", None])
@pytest.mark.parametrize("switch", [None, "1", "0", "dplr"])
def test_the_gated_delta_rules_route_through_fla(monkeypatch, who, switch):
    """Where fla computes its whole gated backward (``who = "fla"``) the gated delta rule takes fla's gated op; where
    fla refuses it (``"torch"``: our form of the refused kernel registered), fla's gated op with our forms by default
    (unset or ``"1"``), the plain-torch form under ``"0"``, fla's DPLR op under ``"dplr"``; where our forms are
    switched off (None), only the DPLR trial goes through fla. DeltaNet's ungated rule is unaffected."""
    monkeypatch.setattr(fla_delta, "fla_op", lambda module, name: naive_delta_rule)  # fla "importable"
    monkeypatch.setattr(fla_delta, "gated_backward", lambda: who)
    if switch is not None:
        monkeypatch.setenv(fla_delta.GATED_SWITCH, switch)
    else:
        monkeypatch.delenv(fla_delta.GATED_SWITCH, raising=False)
    expected = {
        ("fla", None): "gated", ("fla", "1"): "gated", ("fla", "0"): "gated", ("fla", "dplr"): "gated",
        ("torch", None): "gated", ("torch", "1"): "gated", ("torch", "0"): None, ("torch", "dplr"): "dplr",
        (None, None): None, (None, "1"): None, (None, "0"): None, (None, "dplr"): "dplr",
    }[who, switch]  # fmt: skip
    assert fla_delta.gated_route() == expected
    cuda = torch.device("cuda")  # a device object only: nothing is allocated on it
    assert fla_delta.delta_rule_available(cuda, torch.bfloat16, 32, 64, gated=True) is (expected is not None)
    assert fla_delta.delta_rule_available(cuda, torch.float32, 32, 64, gated=True) is False
    assert fla_delta.delta_rule_available(cuda, torch.bfloat16, 32, 32, gated=False) is True
    assert fla_delta.delta_rule_available(cuda, torch.float32, 32, 32, gated=False) is False


def test_an_unknown_gated_switch_value_is_refused_naming_the_switch(monkeypatch):
    monkeypatch.setenv(fla_delta.GATED_SWITCH, "yes")
    with pytest.raises(ValueError, match="MQARKIT_FLA_GATED_DELTA_RULE='yes': needs one of 1, 0, dplr or unset"):
        fla_delta.gated_switch()


def naive_dplr(q, k, v, a, b, gk, scale, chunk_size):
    """fla's ``chunk_dplr_delta_rule`` contract, token by token (its ``dplr_recurrence``, here in the folded layout
    and with the scale given): ``S_t = diag(e^{gk_t}) S_{t−1} + b_t (a_tᵀ S_{t−1}) + k_t v_tᵀ``, ``o_t = scale ·
    S_tᵀ q_t``; ``q, k, a, b, gk (RB, N, H, K)``, ``v (RB, N, H, V)`` -> ``(o, final state)``."""
    assert chunk_size == fla_delta.DPLR_CHUNK
    state = q.new_zeros(q.shape[0], q.shape[2], q.shape[3], v.shape[-1])  # (RB, H, K, V)
    outputs = []
    for t in range(q.shape[1]):
        read = (a[:, t, :, :, None] * state).sum(-2)  # a_tᵀ S_{t−1}, (RB, H, V)
        state = torch.exp(gk[:, t])[..., None] * state + b[:, t, :, :, None] * read[:, :, None, :]
        state = state + k[:, t, :, :, None] * v[:, t, :, None, :]
        outputs.append(scale * (q[:, t, :, :, None] * state).sum(-2))
    return torch.stack(outputs, dim=1), state


def test_the_dplr_route_computes_the_gated_delta_rule(monkeypatch):
    """The trial ``"dplr"`` hands fla's DPLR op what makes its recurrence the gated delta rule: the folded layout's
    values and gradients (float64, fla's op replaced by its contract token by token) equal the gated delta rule's."""
    monkeypatch.setattr(fla_delta, "gated_backward", lambda: "torch")  # fla refuses its gated backward here
    monkeypatch.setenv(fla_delta.GATED_SWITCH, "dplr")
    monkeypatch.setattr(fla_delta, "fla_call", lambda module, name: {fla_delta.DPLR: naive_dplr}[module, name])
    inputs = [t.requires_grad_() for t in _inputs(gated=True, seed=5)]
    inputs[4] = (inputs[4].detach() * 4).requires_grad_()  # strong decays too: e^{g} down to e^{-4} a step
    got, want = fla_delta._fla_forward(*inputs), naive_delta_rule(*inputs)
    assert_close(got, want, context="dplr route values")
    probe = torch.randn(want.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    for a, b, name in zip(
        torch.autograd.grad((got * probe).sum(), inputs),
        torch.autograd.grad((want * probe).sum(), inputs),
        ("q", "k", "v", "beta", "log_decay"),
        strict=True,
    ):
        assert_close(a, b, context=f"dplr route gradient of {name}")


def test_the_dplr_contract_is_flas_own_naive_recurrence():
    """With fla installed (not in CI): :func:`naive_dplr` equals fla's ``dplr_recurrence`` (its layout ``(B, H, N,
    ·)``, ``q`` scaled by ``K^{-1/2}`` inside), so the route above is tested against fla's own statement of it."""
    pytest.importorskip("fla")
    from fla.ops.generalized_delta_rule.dplr.naive import dplr_recurrence

    gen = torch.Generator().manual_seed(7)  # float32: fla's naive form computes in float32
    q, k, a, b = (torch.randn(RB, N, H, K, generator=gen) for _ in range(4))
    v = torch.randn(RB, N, H, V, generator=gen)
    gk = -torch.rand(RB, N, H, K, generator=gen)
    ours, _ = naive_dplr(q, k, v, a, b, gk, scale=1.0, chunk_size=fla_delta.DPLR_CHUNK)
    heads_first = [t.transpose(1, 2) for t in (q * K**0.5, k, v, a, b, gk)]
    flas, _ = dplr_recurrence(*heads_first)
    assert_close(ours, flas.transpose(1, 2), dtype="float32", context="naive DPLR against fla's dplr_recurrence")


@pytest.mark.parametrize("family", ["delta_net", "gated_delta_net"])
@pytest.mark.parametrize("widths", [((2, 3), (1, 5), (1, 5)), ((2, 3), (1, 5), (2, 3))], ids=["in-order", "gathered"])
def test_a_delta_rule_family_compiles_whole_around_the_op(naive_fla, monkeypatch, family, widths):
    """The compile trial's step on the CPU: the family's forward on fla's route (its short convolutions, norms, gates,
    the width groups, gathered or not, and the op) traced whole (``fullgraph=True``: a graph break would raise) by
    dynamo and AOTAutograd (``aot_eager``; inductor's code generation is the GPU test's: on the CPU it took about
    25 s more a case), equals eager in values and every gradient, at two sequence lengths in turn (the second traced
    with dynamic sizes, where DeltaNet's stack once failed inductor's stride assertion on an H100)."""
    from mqarkit.gpu.frontier.families import family_class
    from mqarkit.gpu.frontier.families.delta_net import DeltaNet

    monkeypatch.setattr(DeltaNet, "fla_serves", lambda self, device, dtype: True)
    knobs = [{"heads": h, "head_dim": k} for h, k in widths]
    gens = [torch.Generator().manual_seed(i) for i in range(len(knobs))]
    mixer = family_class(family)(12, 32, knobs, gens).to(torch.float64)
    assert mixer.width_groups.in_order == (widths[1] == widths[2])
    compiled = torch.compile(mixer.forward, fullgraph=True, backend="aot_eager")
    leaves = list(mixer.parameters())
    for n in (16, 9):
        u = torch.randn(3, 2, n, 12, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
        u.requires_grad_()
        out, ref = compiled(u), mixer(u)
        probe = torch.randn(out.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
        got = torch.autograd.grad((out * probe).sum(), [u, *leaves])
        want = torch.autograd.grad((ref * probe).sum(), [u, *leaves])
        assert_close(out, ref, dtype="float64", context=f"{family} N = {n} compiled values")
        names = ["u", *(name for name, _ in mixer.named_parameters())]
        for name, a, b in zip(names, got, want, strict=True):
            assert_close(a, b, dtype="float64", context=f"{family} N = {n} compiled gradient of {name}")
