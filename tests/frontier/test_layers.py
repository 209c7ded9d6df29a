"""The ``layers = "mixer"`` topology (the family's mixer in both blocks, in the family's reference block) against a
naive single-run model written from Zoology's block loop (values in float32, gradients in float64, as the family
tests), its query-row form, its measured state (both layers), RWKV-4's per-layer initialisation, and its rules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mqarkit.gpu.frontier.config import ModelConfig
from mqarkit.gpu.frontier.families import family_class
from mqarkit.gpu.frontier.model import StackedHybrid, state_numbers
from mqarkit.gpu.frontier.steps import micro_batch
from mqarkit.gpu.frontier.sweep_file import SweepFileError, parse_sweeps
from mqarkit.tolerances import assert_close, assert_close_scaled

D, VOCAB, MAX_LEN = 16, 32, 24
# the families the reference builds this way ([B] Fig. 2, [Z] Fig. 2), plus two TransformerBlock families
KNOBS = {
    "mamba": [{"d_state": 4}, {"d_state": 6}],
    "h3": [{"d_state": 2, "head_dim": 2}, {"d_state": 6, "head_dim": 4}],
    "hyena": [{}, {}],
    "rwkv4": [{}, {}],
    "based": [{"feature_dim": 3}, {"feature_dim": 5}],
    "attention": [{}, {}],
}


def _model(family: str, seeds=(1, 2)) -> StackedHybrid:
    configs = [ModelConfig(family, D, vocab_size=VOCAB, max_len=MAX_LEN, layers="mixer", **k) for k in KNOBS[family]]
    return StackedHybrid(configs, list(seeds))


def _tokens(seed: int, shape=(3, 20)) -> torch.Tensor:
    return torch.randint(0, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


def _naive(model: StackedHybrid, run: int, x: torch.Tensor) -> torch.Tensor:
    """Run ``run`` alone, ``x (B, N)`` -> ``(B, N, d)``: Zoology's ``LMBackbone.layers_forward`` written out, with
    ``TransformerBlock`` (two LayerNorms, the block hands ``norm2(residual)`` on) or ``MambaBlock`` (one RMSNorm,
    ε 1e-5, no bias; hands the mixer's output on), each mixer its family's naive reference."""
    p = {name: t[run] for name, t in model.named_parameters() if not name.startswith("mixer")}

    def ln(v, name):
        return F.layer_norm(v, v.shape[-1:], p[f"{name}_w"], p[f"{name}_b"], eps=1e-5)

    def rms(v, name):
        return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + 1e-5) * p[f"{name}_w"]

    mixers = [lambda u: model.mixer0.reference(run, u), lambda u: model.mixer.reference(run, u)]
    hidden, residual = p["emb"][x], None
    for i, mixer in enumerate(mixers):
        residual = hidden if residual is None else hidden + residual
        if model.block_type == "mamba":
            hidden = mixer(rms(residual, f"rms{i}"))
        else:
            hidden = mixer(ln(residual, f"ln{i}a"))
            residual = residual + hidden
            hidden = ln(residual, f"ln{i}b")
    return ln(hidden + residual, "lnf")


def test_the_reference_blocks_per_family():
    """Mamba in Zoology's MambaBlock, every other family in its TransformerBlock; the hybrid is unchanged."""
    assert _model("mamba").block_type == "mamba"
    for family in ("h3", "hyena", "rwkv4", "based", "attention"):
        assert _model(family).block_type == "transformer"
    hybrid = StackedHybrid([ModelConfig("mamba", D, vocab_size=VOCAB, max_len=MAX_LEN, d_state=4)], [1])
    assert hybrid.block_type == "transformer" and not hasattr(hybrid, "mixer0") and hasattr(hybrid, "c0_k")
    names = {n for n, _ in _model("mamba").named_parameters() if not n.startswith("mixer")}
    assert names == {"emb", "rms0_w", "rms1_w", "lnf_w", "lnf_b"}
    names = {n for n, _ in _model("hyena").named_parameters() if not n.startswith("mixer")}
    assert names == {"emb", "lnf_w", "lnf_b"} | {f"ln{i}{j}_{k}" for i in "01" for j in "ab" for k in "wb"}


@pytest.mark.parametrize("family", sorted(KNOBS))
def test_model_equals_naive_values_and_gradients(family):
    model = _model(family)
    with torch.no_grad():  # scale the mixers up so that a wrong formula cannot hide in tiny outputs
        for mixer in model.mixers().values():
            for t in mixer.parameters():
                t.mul_(2)
    x = _tokens(0)
    fast = model(x)
    for r in range(2):
        assert_close_scaled(fast[r], _naive(model, r, x), dtype="float32", context=f"{family} run {r} values")
    model = model.to(torch.float64)
    fast = model(x)
    probe = torch.randn(fast.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    names, params = zip(*model.named_parameters())
    for r in range(2):
        grads = torch.autograd.grad((fast[r] * probe[r]).sum(), params, retain_graph=True)
        ref = torch.autograd.grad((_naive(model, r, x) * probe[r]).sum(), params, allow_unused=True)
        for name, a, b in zip(names, grads, ref):
            b = torch.zeros_like(a) if b is None else b
            assert_close(a, b, dtype="float64", context=f"{family} run {r} gradient of {name}")


@pytest.mark.parametrize("family", sorted(KNOBS))
def test_hidden_at_query_rows_equals_forward_gathered(family):
    """The query-row form (block 0 through the generic trunk, block 1 at the query rows), float64: values and
    gradients, a repeated query position included."""
    model = _model(family).to(torch.float64)
    x, qpos = _tokens(2), torch.tensor([[2, 7, 19], [0, 1, 5], [4, 4, 12]])
    full = model(x)
    gathered = torch.stack([full[:, i, qpos[i]] for i in range(3)], dim=1).reshape(2, 9, -1)
    rows = model.hidden_at(x, qpos)
    assert_close(rows, gathered, dtype=torch.float64, context=f"{family} values")
    probe = torch.randn(rows.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    params = list(model.parameters())
    for (name, _), a, b in zip(
        model.named_parameters(),
        torch.autograd.grad((rows * probe).sum(), params),
        torch.autograd.grad((gathered * probe).sum(), params),
    ):
        assert_close(a, b, dtype=torch.float64, context=f"{family} gradient of {name}")


@pytest.mark.parametrize("family", sorted(KNOBS))
def test_measured_state_is_both_layers(family):
    """Both mixers' carried tensors, each equal to stepping that mixer over its own layer's input (found by the naive
    model's first block), and their count the family's formula twice."""
    model = _model(family)
    x = _tokens(4, (17,))
    for r in range(2):
        states, how = model.final_state(r, x)
        assert how == "recurrent mode"
        formula = family_class(family).state_formula(D, MAX_LEN, KNOBS[family][r], 17)
        assert state_numbers(states) == 2 * formula
        assert {k.split(".")[0] for k in states} == {"layer0", "layer1"}
        h = model.emb[r][x][None]  # (1, N, d)
        if model.block_type == "mamba":
            u0 = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-5) * model.rms0_w[r]
        else:
            u0 = F.layer_norm(h, (D,), model.ln0a_w[r], model.ln0a_b[r])
        with torch.no_grad():
            stepped = None
            for t in range(17):
                _, stepped = model.mixer0.step(r, u0[:, t], stepped)
        for name, t in stepped.items():
            assert_close_scaled(states[f"layer0.{name}"], t[0], dtype="float32", context=f"{family} {r} {name}")


@pytest.mark.parametrize("family", ["mamba", "rwkv4"])
def test_a_stacked_run_equals_the_run_alone_and_its_layers_differ(family):
    model = _model(family)
    x = _tokens(5)
    both = model(x)
    for r in range(2):
        alone = StackedHybrid([model.configs[r]], [(1, 2)[r]])(x)
        assert_close(both[r], alone[0], dtype="float32", context=f"{family} run {r}")
    random = [n for n, t in model.mixer.named_parameters() if not torch.equal(t, model.mixer0.get_parameter(n))]
    assert random, "block 0's mixer must have its own parameters"


def test_rwkv4_initialises_each_layer_as_the_reference():
    """RWKVTimeMixer's "fancy" init at layer_idx 0 and 1 (n_layer 12): zoology/mixers/rwkv.py, written out here."""
    model = _model("rwkv4")
    hybrid = StackedHybrid([ModelConfig("rwkv4", D, vocab_size=VOCAB, max_len=MAX_LEN)], [1])
    for layer, mixer in ((0, model.mixer0), (1, model.mixer), (1, hybrid.mixer)):
        r01, r10 = layer / 11, 1.0 - layer / 12
        decay = torch.tensor([-5 + 8 * (h / (D - 1)) ** (0.7 + 1.3 * r01) for h in range(D)])
        mix = torch.arange(D) / D
        assert_close(mixer.time_decay[0], decay, dtype="float32", context=f"time_decay layer {layer}")
        assert_close(mixer.mix_k[0], mix**r10, dtype="float32", context=f"mix_k layer {layer}")
        assert_close(mixer.mix_v[0], mix**r10 + 0.3 * r01, dtype="float32", context=f"mix_v layer {layer}")
        assert_close(mixer.mix_r[0], mix ** (0.5 * r10), dtype="float32", context=f"mix_r layer {layer}")


def test_records_and_run_ids_carry_the_topology():
    mixer = ModelConfig("mamba", 64, d_state=16, layers="mixer")
    hybrid = ModelConfig("mamba", 64, d_state=16)
    assert mixer.label() == "mamba-d64-n16-mixer2" and hybrid.label() == "mamba-d64-n16"
    assert mixer.to_dict()["layers"] == "mixer" and hybrid.to_dict()["layers"] == "hybrid"
    assert mixer.stack_key() != hybrid.stack_key()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layers": "both"}, "layers='both': needs one of 'hybrid'"),
        ({"layers": None}, "layers=None: needs one of"),
        ({"layers": "mixer", "conv_kernel": 4}, "conv_kernel=4: the short BaseConv of layers='hybrid'"),
    ],
)
def test_bad_layers_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig("mamba", 16, d_state=4, **kwargs).validate()


def test_a_plain_module_has_no_mixer_topology():
    config = ModelConfig("module", 16, mixer="tests.frontier.user_mixers_example:DeltaMemory", layers="mixer")
    with pytest.raises(ValueError, match="layers='mixer': only a family"):
        config.validate()


def test_sweep_files_take_layers():
    text = """
        name = "t"
        epochs = 1
        lrs = [0.01]
        train = [{ seq_len = 8, num_kv_pairs = 1, num_examples = 4 }]
        test = [{ seq_len = 8, num_kv_pairs = 1, num_examples = 4 }]
        [[models]]
        family = "hyena"
        d_model = 16
        layers = %s
    """
    (sweep,) = parse_sweeps(text % '"mixer"')
    assert [r.model.layers for r in sweep.runs()] == ["mixer"]
    with pytest.raises(SweepFileError, match=r"models\[0\] \(hyena\): layers='two'"):
        parse_sweeps(text % '"two"')


def test_a_users_stacked_family_builds_both_layers():
    family = "tests.frontier.user_mixers_example:StackedEMA"
    config = ModelConfig(family, D, vocab_size=VOCAB, max_len=MAX_LEN, layers="mixer", bits=3)
    model = StackedHybrid([config], [3])
    assert model.mixer0.layer == 0 and model.mixer.layer == 1
    assert model(_tokens(6)).shape == (1, 3, 20, D)


def test_micro_batch_counts_both_mixers_under_layers_mixer():
    hybrid = StackedHybrid([ModelConfig("hyena", 32, vocab_size=64, max_len=64)], [0], "cpu")
    both = StackedHybrid([ModelConfig("hyena", 32, vocab_size=64, max_len=64, layers="mixer")], [0], "cpu")
    per_example = hybrid.mixer.intermediate_elements(64)
    assert both.mixers().keys() == {"mixer0", "mixer"}
    assert micro_batch(hybrid, 256, 64, 8 * per_example) == 8
    assert micro_batch(both, 256, 64, 8 * per_example) == 4
