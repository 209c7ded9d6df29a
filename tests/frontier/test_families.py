"""Every registered family against the mixer protocol (CPU, float32; gradients in float64): the fast path against
the naive reference (values and gradients), recurrent mode against the reference, the carried state against its
formula, padding that is exactly zero with no gradient, stacking that changes nothing, and the query-row form against
the whole sequence.

Two float32 computations of one function in different orders are compared relative to each tensor's scale
(``assert_close_scaled``): their outputs and states are sums of many terms, and where the terms cancel an entry carries
their rounding, not its own (the same float32 noise, relative to the largest entry, in every form; mamba's outputs reach
1e3 at the ×3 weights below, with entries near 1). Gradients are compared in float64 entry by entry, where rounding
cannot hide an error."""

from __future__ import annotations

import pytest
import torch
from cuda_knobs import CUDA_KNOBS

from mqarkit.gpu.frontier.config import ModelConfig
from mqarkit.gpu.frontier.families import FAMILIES, family_class
from mqarkit.gpu.frontier.model import StackedHybrid, state_numbers
from mqarkit.gpu.frontier.protocol import Knob, StackedMixer
from mqarkit.tolerances import assert_close, assert_close_scaled

D, VOCAB, MAX_LEN = 32, 64, 32
# two runs per family, with different knobs where the family has any (so padding and masks are exercised)
KNOBS = {
    "attention": [{}, {}],
    "based": [{"feature_dim": 3}, {"feature_dim": 8}],
    "sliding_window": [{"window": 1}, {"window": 7}],
    "long_conv": [{}, {}],
    "mamba2": [{"d_state": 4}, {"d_state": 9}],
    "rwkv4": [{}, {}],
    "rwkv7": [{"head_dim": 4}, {"head_dim": 8}],
    "gla": [{"heads": 2, "head_dim": 3}, {"heads": 1, "head_dim": 5}],
    "delta_net": [{"heads": 2, "head_dim": 3}, {"heads": 1, "head_dim": 5}],
    "gated_delta_net": [{"heads": 2, "head_dim": 3}, {"heads": 1, "head_dim": 5}],
    "h3": [{"d_state": 2, "head_dim": 2}, {"d_state": 6, "head_dim": 4}],
    "hyena": [{}, {}],
    "mamba": [{"d_state": 4}, {"d_state": 9}],
}


def test_every_registered_family_is_covered_here():
    assert set(KNOBS) == set(FAMILIES)
    assert set(CUDA_KNOBS) == set(FAMILIES)  # the GPU tests' table too (they are skipped here)


def _model(family: str, seeds=(1, 2)) -> StackedHybrid:
    configs = [ModelConfig(family, D, vocab_size=VOCAB, max_len=MAX_LEN, **k) for k in KNOBS[family]]
    return StackedHybrid(configs, list(seeds))


def _inputs(seed: int, shape=(2, 3, 20, D)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _scaled_up(model: StackedHybrid) -> StackedHybrid:
    """The same model with its mixer's weights ×3, so outputs are not tiny and a wrong formula cannot hide in them."""
    with torch.no_grad():
        for p in model.mixer.parameters():
            p.mul_(3)
    return model


@pytest.mark.parametrize("family", sorted(KNOBS))
def test_fast_path_equals_reference_values_and_gradients(family):
    """Values in float32; gradients in float64, where rounding cannot hide an error: a gradient entry is a sum of many
    terms, and where they cancel, the float32 rounding of either form (for the gated recurrences ~1e-6 of the
    tensor's scale, fast and naive alike, against float64) would exceed any tolerance on the entry itself."""
    mixer = _scaled_up(_model(family)).mixer
    u = _inputs(0)
    fast = mixer(u)
    for r in range(2):
        assert_close_scaled(fast[r], mixer.reference(r, u[r]), dtype="float32", context=f"{family} run {r} values")
    mixer = mixer.to(torch.float64)
    u = u.double().requires_grad_()
    fast = mixer(u)
    probe = _inputs(1, fast.shape).double()
    names = ["u", *(n for n, _ in mixer.named_parameters())]
    for r in range(2):
        ref = mixer.reference(r, u[r])
        grads = torch.autograd.grad((fast[r] * probe[r]).sum(), [u, *mixer.parameters()], retain_graph=True)
        ref_grads = torch.autograd.grad((ref * probe[r]).sum(), [u, *mixer.parameters()], allow_unused=True)
        for name, a, b in zip(names, grads, ref_grads):
            b = torch.zeros_like(a) if b is None else b
            assert_close(a, b, dtype="float64", context=f"{family} run {r} gradient of {name}")


@pytest.mark.parametrize("family", sorted(KNOBS))
def test_recurrent_mode_equals_reference(family):
    model = _scaled_up(_model(family))
    u = _inputs(2)
    for r in range(2):
        state, outputs = None, []
        for t in range(u.shape[2]):
            y, state = model.mixer.step(r, u[r][:, t], state)
            outputs.append(y)
        stepped, ref = torch.stack(outputs, 1), model.mixer.reference(r, u[r])
        assert_close_scaled(stepped, ref, dtype="float32", context=f"{family} {r}")


@pytest.mark.parametrize("family", sorted(KNOBS))
@pytest.mark.parametrize("seq_len", [1, 2, 5, 20, MAX_LEN])
def test_carried_state_is_what_stepping_carries_and_its_formula(family, seq_len):
    """``recurrent_state`` (a one-pass form) equals the state after stepping, tensor by tensor, and the number of
    values equals the family's closed form (state measured, then compared)."""
    model = _scaled_up(_model(family))
    u = _inputs(3, (2, seq_len, D))
    for r in range(2):
        state = None
        for t in range(seq_len):
            _, state = model.mixer.step(r, u[r][None, t], state)
        one_pass = model.mixer.recurrent_state(r, u[r])
        assert set(one_pass) == set(state)
        for name, t in one_pass.items():
            assert_close_scaled(t, state[name][0], dtype="float32", context=f"{family} run {r} {name}")
        counted = sum(t.numel() for t in one_pass.values())
        assert counted == family_class(family).state_formula(D, MAX_LEN, KNOBS[family][r], seq_len)


@pytest.mark.parametrize("family", sorted(KNOBS))
def test_padding_is_zero_and_gets_no_gradient(family):
    model = _model(family)
    mixer = model.mixer
    u = _inputs(4).requires_grad_()
    (mixer(u) ** 2).sum().backward()
    masks = mixer.gradient_masks()
    if any(KNOBS[family]):  # knobs that change shapes pad something
        assert masks or family == "sliding_window"
    for name, mask in masks.items():
        p = mixer.get_parameter(name)
        assert torch.equal(p.detach() * (1 - mask), torch.zeros_like(p)), name
        assert torch.equal(p.grad * (1 - mask), torch.zeros_like(p)), name


@pytest.mark.parametrize("family", sorted(KNOBS))
def test_a_stacked_run_equals_the_run_alone(family):
    model = _model(family)
    x = torch.randint(0, VOCAB, (3, 20), generator=torch.Generator().manual_seed(0))
    both = model(x)
    for r in range(2):
        alone = StackedHybrid([model.configs[r]], [(1, 2)[r]])(x)
        assert_close(both[r], alone[0], dtype="float32", context=f"{family} run {r}")


@pytest.mark.parametrize("family", sorted(KNOBS))
@pytest.mark.parametrize(
    ("dtype", "qpos"),
    [
        (torch.float32, [[2, 7, 19], [0, 1, 5], [4, 11, 12]]),
        # a repeated query position: its gradient adds up, in another order; float64, so rounding cannot hide an error
        (torch.float64, [[2, 7, 19], [0, 1, 5], [4, 4, 12]]),
    ],
)
def test_hidden_at_query_rows_equals_forward_gathered(family, dtype, qpos):
    """``hidden_at`` runs the mixer's query-row form and the tail on the query rows only: the same values and
    gradients as ``forward`` (first and last positions, and a repeated one, included)."""
    model = _model(family).to(dtype)
    g = torch.Generator().manual_seed(5)
    x, qpos = torch.randint(0, VOCAB, (3, 20), generator=g), torch.tensor(qpos)
    full = model(x)  # (R, 3, 20, d)
    gathered = torch.stack([full[:, i, qpos[i]] for i in range(3)], dim=1).reshape(2, 9, -1)  # row b·D + j
    rows = model.hidden_at(x, qpos)
    assert_close(rows, gathered, dtype=dtype, context=f"{family} values")
    probe = torch.randn(rows.shape, generator=g, dtype=dtype)
    params = list(model.parameters())
    for (name, _), a, b in zip(
        model.named_parameters(),
        torch.autograd.grad((rows * probe).sum(), params),
        torch.autograd.grad((gathered * probe).sum(), params),
    ):
        assert_close(a, b, dtype=dtype, context=f"{family} gradient of {name}")


@pytest.mark.parametrize("family", sorted(KNOBS))
def test_measured_state_of_the_model(family):
    """The model's state: layer 0's short-conv cache (k−1 inputs) plus the mixer's, measured on a real prefix."""
    model = _model(family)
    x = torch.randint(0, VOCAB, (17,), generator=torch.Generator().manual_seed(6))
    for r in range(2):
        states, how = model.final_state(r, x)
        assert how == "recurrent mode"
        assert states["layer0.conv_cache"].shape == (2, D)
        assert state_numbers(states) == 2 * D + family_class(family).state_formula(D, MAX_LEN, KNOBS[family][r], 17)


def test_knob_rules_name_the_knob():
    with pytest.raises(ValueError, match="feature_dim: family 'based' needs feature_dim"):
        ModelConfig("based", D).validate()
    with pytest.raises(ValueError, match="window=0: needs an integer window >= 1"):
        ModelConfig("sliding_window", D, window=0).validate()
    with pytest.raises(ValueError, match="window=2.5: needs an integer"):
        ModelConfig("sliding_window", D, window=2.5).validate()
    with pytest.raises(ValueError, match="d_state=4: family 'based' takes feature_dim"):
        ModelConfig("based", D, feature_dim=4, d_state=4).validate()
    with pytest.raises(ValueError, match="d_model=40: mamba2 needs 2\\*d_model divisible by its head size 64"):
        ModelConfig("mamba2", 40, d_state=4).validate()
    with pytest.raises(ValueError, match="head_dim=5: rwkv7 needs d_model=32 divisible by head_dim"):
        ModelConfig("rwkv7", D, head_dim=5).validate()
    with pytest.raises(ValueError, match="head_dim=1: needs an integer head_dim >= 2"):
        ModelConfig("rwkv7", D, head_dim=1).validate()
    with pytest.raises(ValueError, match="heads: family 'gla' needs heads"):
        ModelConfig("gla", D, head_dim=4).validate()
    with pytest.raises(ValueError, match="d_state=3: h3 needs an even d_state"):
        ModelConfig("h3", D, d_state=3, head_dim=2).validate()
    with pytest.raises(ValueError, match="head_dim=3: h3 needs head_dim dividing d_model=32"):
        ModelConfig("h3", D, d_state=4, head_dim=3).validate()
    with pytest.raises(ValueError, match="head_dim: family 'h3' needs head_dim"):
        ModelConfig("h3", D, d_state=4).validate()
    with pytest.raises(ValueError, match="d_state=0: needs an integer d_state >= 1"):
        ModelConfig("mamba", D, d_state=0).validate()
    with pytest.raises(ValueError, match="d_state=4: family 'hyena' takes no knobs"):
        ModelConfig("hyena", D, d_state=4).validate()
    with pytest.raises(ValueError, match="family='rnn': unknown"):
        ModelConfig("rnn", D).validate()
    with pytest.raises(ValueError, match="family='math:pi'"):
        ModelConfig("math:pi", D).validate()


def test_knob_kinds():
    Knob("x", "x").check(3)
    with pytest.raises(ValueError, match="needs an integer"):
        Knob("x", "x").check(True)
    Knob("s", "s", kind=float).check(0.5)
    with pytest.raises(ValueError, match="finite"):
        Knob("s", "s", kind=float).check(float("nan"))
    with pytest.raises(ValueError, match="needs a str"):
        Knob("mode", "m", kind=str).check(3)


def test_run_ids_keep_the_shipped_format():
    """Records of earlier sweeps stay resumable: built-in families' run ids are what they were."""
    assert ModelConfig("based", 64, feature_dim=16).label() == "based-d64-f16"
    assert ModelConfig("sliding_window", 128, window=64).label() == "sliding_window-d128-w64"
    assert ModelConfig("mamba2", 64, d_state=8, tie_head=False).label() == "mamba2-d64-n8-untied"
    assert ModelConfig("delta_net", 64, heads=2, head_dim=16).label() == "delta_net-d64-hd16-h2"
    assert ModelConfig("attention", 64, conv_kernel=4).label() == "attention-d64-k4"
    assert ModelConfig("h3", 64, d_state=16, head_dim=2).label() == "h3-d64-n16-hd2"
    assert ModelConfig("hyena", 64).label() == "hyena-d64"
    assert ModelConfig("mamba", 64, d_state=16).label() == "mamba-d64-n16"


def test_protocol_base_class_refuses_inconsistent_runs():
    class Changing(StackedMixer):
        name = "changing"
        knobs = (Knob("k", "k"),)

        @classmethod
        def init_run(cls, d_model, max_len, knobs, generator):
            return {"w": torch.zeros((knobs["k"],) * knobs["k"])}

    with pytest.raises(ValueError, match="changes its number of axes"):
        Changing(4, 8, [{"k": 1}, {"k": 2}], [torch.Generator(), torch.Generator()])
    with pytest.raises(ValueError, match="one entry per run"):
        Changing(4, 8, [{"k": 1}], [])
