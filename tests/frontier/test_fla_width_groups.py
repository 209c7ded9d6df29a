"""Runs of different head counts or widths call fla once per group at their own widths (``fla_heads.WidthGroups``):
the groups and their orders, and a family's outputs and gradients through the grouped calls against one call at the
stack's padded widths (float64; fla's op replaced by its contract token by token, as in ``test_fla_delta_op``)."""

from __future__ import annotations

import pytest
import torch
from test_families import KNOBS, _inputs, _model
from test_fla_delta_op import naive_delta_rule

from mqarkit.gpu.frontier.families.delta_net import DeltaNet
from mqarkit.gpu.frontier.kernels import fla_delta
from mqarkit.gpu.frontier.kernels.fla_heads import WidthGroups, width_groups
from mqarkit.tolerances import assert_close


def test_runs_are_grouped_by_their_widths_in_order_of_first_appearance():
    groups = width_groups([(2, 4, 4), (2, 8, 8), (2, 4, 4), (1, 8, 8), (2, 8, 8)])
    assert groups == WidthGroups(order=(0, 2, 1, 4, 3), sizes=(2, 2, 1), widths=((2, 4, 4), (2, 8, 8), (1, 8, 8)))
    assert groups.unorder == (0, 2, 1, 4, 3)  # an involution here; in general the inverse:
    assert [groups.order[i] for i in width_groups([(1, 2, 2), (3, 4, 4), (1, 2, 2)]).unorder] == [0, 1, 2]
    assert width_groups([(2, 4, 4)] * 3) is None  # one width: one call, as without groups


@pytest.fixture
def fla_on_the_cpu(monkeypatch):
    """The families' fla path taken on the CPU, fla's op replaced by its contract; the calls' folded shapes kept."""
    calls = []
    monkeypatch.setattr(DeltaNet, "fla_serves", lambda self, device, dtype: True)
    monkeypatch.setattr(fla_delta, "_fla_forward", recording(naive_delta_rule, calls))
    return calls


def recording(contract, calls: list):
    """``contract`` called as fla's op would be, each call's ``(R_g·B, H_g)`` appended to ``calls``."""

    def call(q, *args, **kwargs):
        calls.append(tuple(q.shape[:3:2]))
        return contract(q, *args, **kwargs)

    return call


@pytest.mark.parametrize("family", ["delta_net", "gated_delta_net"])
def test_grouped_calls_give_the_padded_calls_values_and_gradients(family, fla_on_the_cpu, monkeypatch):
    mixer = _model(family).mixer.to(torch.float64)
    assert [(k["heads"], k["head_dim"]) for k in KNOBS[family]] == [(2, 3), (1, 5)]  # two groups
    assert mixer.width_groups.sizes == (1, 1) and "width_order" not in mixer.state_dict()  # follows from the knobs
    u = _inputs(0).double().requires_grad_()
    probe = _inputs(1, (2, 3, 20, mixer.d)).double()
    leaves = [u, *mixer.parameters()]
    grouped = mixer(u)
    grouped_grads = torch.autograd.grad((grouped * probe).sum(), leaves)
    assert fla_on_the_cpu == [(3, 2), (3, 1)]  # one call per run (its own group), at its own head count
    fla_on_the_cpu.clear()
    monkeypatch.setattr(mixer, "width_groups", None)  # one call at the stack's widths: H = 2, K = V = 5 (16 folded)
    padded = mixer(u)
    padded_grads = torch.autograd.grad((padded * probe).sum(), leaves)
    assert fla_on_the_cpu == [(6, 2)]
    assert_close(grouped, padded, dtype="float64", context=f"{family} values")
    names = ["u", *(n for n, _ in mixer.named_parameters())]
    for name, a, b in zip(names, grouped_grads, padded_grads, strict=True):
        assert_close(a, b, dtype="float64", context=f"{family} gradient of {name}")


@pytest.mark.parametrize("gated", [False, True])
def test_runs_out_of_group_order_come_back_in_stack_order(gated, fla_on_the_cpu):
    """Four runs of widths A, B, B, A (order 0, 3, 1, 2, not its own inverse): the grouped call's output is each
    run's own, in stack order, zero beyond the run's heads and value width; the padded entries of the inputs are zero,
    as the masked weights make them."""
    widths = [(2, 3, 4), (1, 5, 6), (1, 5, 6), (2, 3, 4)]  # (H, K, V) per run; the stack: H = 2, K = 5, V = 6
    gen = torch.Generator().manual_seed(4)
    q, k, v, beta, log_decay = (
        torch.zeros(4, 2, 7, *shape, dtype=torch.float64) for shape in ((2, 5), (2, 5), (2, 6), (2,), (2,))
    )
    for r, (h, kw, vw) in enumerate(widths):
        q[r, ..., :h, :kw] = torch.randn(2, 7, h, kw, generator=gen, dtype=torch.float64)
        k[r, ..., :h, :kw] = torch.nn.functional.normalize(
            torch.randn(2, 7, h, kw, generator=gen, dtype=torch.float64), dim=-1
        )
        v[r, ..., :h, :vw] = torch.randn(2, 7, h, vw, generator=gen, dtype=torch.float64)
        beta[r] = torch.rand(2, 7, 2, generator=gen, dtype=torch.float64)  # padded heads too: their keys are zero
        log_decay[r] = -torch.rand(2, 7, 2, generator=gen, dtype=torch.float64)
    groups = width_groups(widths)
    assert groups.order == (0, 3, 1, 2) and groups.unorder == (0, 2, 3, 1)
    bound = (groups, torch.tensor(groups.order), torch.tensor(groups.unorder))
    decay = log_decay if gated else None
    grouped = fla_delta.fla_delta_rule(q, k, v, beta, decay, bound)
    assert fla_on_the_cpu == [(4, 2), (4, 1)]
    assert_close(grouped, fla_delta.fla_delta_rule(q, k, v, beta, decay), dtype="float64", context="grouped values")
    for r, (h, kw, vw) in enumerate(widths):
        alone = naive_delta_rule(
            q[r, ..., :h, :kw],
            k[r, ..., :h, :kw],
            v[r, ..., :h, :vw],
            beta[r, ..., :h],
            None if decay is None else decay[r, ..., :h].float(),  # in float32, as the op passes them
        )
        assert_close(grouped[r, ..., :h, :vw], alone, dtype="float64", context=f"run {r} alone")
        assert not grouped[r, ..., h:, :].any() and not grouped[r, ..., vw:].any()


def test_runs_already_in_group_order_are_not_gathered(fla_on_the_cpu, monkeypatch):
    """Widths A, A, B (a sweep's order: each model's runs together): ``in_order``, and the grouped call gathers
    nothing (no ``index_select``), giving what the padded call gives."""
    widths = [(2, 3, 3), (2, 3, 3), (1, 5, 5)]
    groups = width_groups(widths)
    assert groups.in_order and not width_groups([(2, 3, 3), (1, 5, 5), (2, 3, 3)]).in_order
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.zeros(3, 2, 6, 2, 5, dtype=torch.float64) for _ in range(3))
    for r, (h, kw, vw) in enumerate(widths):
        q[r, ..., :h, :kw], v[r, ..., :h, :vw] = (
            torch.randn(2, 6, h, kw, generator=gen, dtype=torch.float64) for _ in "qv"
        )
        k[r, ..., :h, :kw] = torch.nn.functional.normalize(
            torch.randn(2, 6, h, kw, generator=gen, dtype=torch.float64), dim=-1
        )
    beta = torch.rand(3, 2, 6, 2, generator=gen, dtype=torch.float64)
    gathers = []
    real = torch.Tensor.index_select
    monkeypatch.setattr(torch.Tensor, "index_select", lambda *a, **kw: gathers.append(1) or real(*a, **kw))
    grouped = fla_delta.fla_delta_rule(
        q, k, v, beta, None, (groups, torch.tensor(groups.order), torch.tensor(groups.unorder))
    )
    assert gathers == [] and fla_on_the_cpu == [(4, 2), (2, 1)]
    assert_close(grouped, fla_delta.fla_delta_rule(q, k, v, beta, None), dtype="float64", context="in-order values")


def test_a_sweeps_stacks_of_the_grouped_families_are_in_group_order():
    """What ``in_order`` relies on: in the shipped presets every stack of DeltaNet, Gated DeltaNet and GLA lists the
    runs of one width together, so their grouped calls gather nothing."""
    from mqarkit.gpu.frontier.families import family_class
    from mqarkit.gpu.frontier.presets import load_preset, preset_names
    from mqarkit.gpu.frontier.sweep import groups

    stacks = 0
    for name in preset_names():
        for sweep in load_preset(name):
            for stack in groups(sweep):
                family = stack[0].model.family
                if family in ("delta_net", "gated_delta_net", "gla"):
                    found = width_groups([family_class(family).widths(r.model.knob_dict()) for r in stack])
                    stacks += found is not None
                    assert found is None or found.in_order, (sweep.name, family, stack[0].model.d_model)
    assert stacks >= 6  # modern: three families at two widths, each stack of three widths


def naive_gla(q, k, v, g, scale):
    """``chunk_gla``'s contract in its folded layout, one token at a time: ``S_t = diag(e^{g_t}) S_{t−1} + k_t v_tᵀ``,
    ``o_t = scale · S_tᵀ q_t``; ``q, k, g (RB, N, H, K)``, ``v (RB, N, H, V)`` -> ``(o, final state)``."""
    state = q.new_zeros(q.shape[0], q.shape[2], q.shape[3], v.shape[-1])
    outputs = []
    for t in range(q.shape[1]):
        state = torch.exp(g[:, t])[..., None].to(state.dtype) * state + k[:, t, ..., None] * v[:, t, ..., None, :]
        outputs.append(scale * (q[:, t, ..., None] * state).sum(-2))
    return torch.stack(outputs, dim=1), state


def test_gla_grouped_calls_give_the_padded_calls_values_and_gradients(monkeypatch):
    from mqarkit.gpu.frontier.families import gla
    from mqarkit.gpu.frontier.kernels import fla_gla

    calls = []
    monkeypatch.setattr(gla, "gla_available", lambda device, k, v: True)
    monkeypatch.setattr(fla_gla, "fla_call", lambda module, name: recording(naive_gla, calls))
    mixer = _model("gla").mixer.to(torch.float64)
    assert mixer.width_groups.widths == ((2, 3, 6), (1, 5, 10))
    u = _inputs(0).double().requires_grad_()
    probe = _inputs(1, (2, 3, 20, mixer.d)).double()
    leaves = [u, *mixer.parameters()]
    grouped = mixer(u)
    grouped_grads = torch.autograd.grad((grouped * probe).sum(), leaves)
    assert calls == [(3, 2), (3, 1)]
    calls.clear()
    monkeypatch.setattr(mixer, "width_groups", None)
    padded = mixer(u)
    padded_grads = torch.autograd.grad((padded * probe).sum(), leaves)
    assert calls == [(6, 2)]
    assert_close(grouped, padded, dtype="float64", context="gla values")
    names = ["u", *(n for n, _ in mixer.named_parameters())]
    for name, a, b in zip(names, grouped_grads, padded_grads, strict=True):
        assert_close(a, b, dtype="float64", context=f"gla gradient of {name}")
