"""Users' own mixers on the frontier (CPU): a plain nn.Module by import path, one model per run, with its state
measured in each accepted form or recorded as unmeasured; a user's StackedMixer family, stacked like a built-in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mqarkit.gpu.frontier.config import GENERIC, ModelConfig
from mqarkit.gpu.frontier.families.based import Based
from mqarkit.gpu.frontier.model import StackedHybrid, state_numbers
from mqarkit.gpu.frontier.optim import StackedAdamW
from mqarkit.gpu.frontier.records import read_records
from mqarkit.gpu.frontier.sweep_file import SweepFileError, parse_sweeps
from mqarkit.gpu.frontier.user_mixers import build_module, constructor_kwargs, measure_module_state
from mqarkit.tolerances import assert_close

HERE = Path(__file__).resolve().parent
EXAMPLE = "user_mixers_example"


@pytest.fixture(autouse=True)
def _example_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))


def _module_config(cls: str, **kwargs) -> ModelConfig:
    return ModelConfig(GENERIC, 16, vocab_size=64, max_len=32, mixer=f"{EXAMPLE}:{cls}", mixer_kwargs=kwargs)


def test_each_run_gets_its_own_module_from_its_seed_and_the_global_rng_is_left_alone():
    before = torch.random.get_rng_state()
    a, b, again = (build_module(f"{EXAMPLE}:DeltaMemory", {}, 16, s) for s in (1, 2, 1))
    assert torch.equal(torch.random.get_rng_state(), before)
    assert not torch.equal(a.qkv.weight, b.qkv.weight) and torch.equal(a.qkv.weight, again.qkv.weight)


def test_width_and_layer_index_are_filled_in_as_the_reference_does():
    from user_mixers_example import CachedDecay, DeltaMemory, StatelessMix

    assert constructor_kwargs(DeltaMemory, {"key_dim": 4}, 32) == {"key_dim": 4, "d_model": 32}
    assert constructor_kwargs(CachedDecay, {}, 32) == {"hidden_size": 32, "layer_idx": 1}
    assert constructor_kwargs(StatelessMix, {"expand": 3}, 32) == {"expand": 3, "d_model": 32}
    assert constructor_kwargs(DeltaMemory, {"d_model": 8}, 32) == {"d_model": 8}  # the user's value wins


def test_a_plain_module_trains_one_model_per_run():
    model = StackedHybrid([_module_config("DeltaMemory", key_dim=4)] * 2, [3, 4])
    assert model.mixer.runs == 2 and not model.mixer.compilable and not model.mixer.graphable
    x = torch.randint(0, 64, (3, 10), generator=torch.Generator().manual_seed(0))
    qpos = torch.tensor([[4, 9], [2, 3], [6, 8]])
    full = model(x)
    for r in range(2):  # run r's output is its own module on its own trunk
        alone = StackedHybrid([model.configs[r]], [(3, 4)[r]])(x)
        assert_close(full[r], alone[0], dtype="float32", context=f"run {r}")
    gathered = torch.stack([full[:, i, qpos[i]] for i in range(3)], dim=1).reshape(2, 6, -1)
    assert_close(model.hidden_at(x, qpos), gathered, dtype="float32", context="query rows")
    # the optimiser: run r's module's parameters get run r's rate, everywhere
    opt = StackedAdamW(model, torch.tensor([1e-2, 3e-2]))
    owner = model.parameter_runs()
    assert set(owner) == {n for n, _ in model.named_parameters() if n.startswith("mixer.")}
    for name, full_lr in zip(opt.names, opt.lr_full):
        if name in owner:
            assert torch.equal(full_lr, torch.full_like(full_lr, (1e-2, 3e-2)[owner[name]]))


@pytest.mark.parametrize(
    ("cls", "kwargs", "how", "numbers"),
    [
        ("DeltaMemory", {"key_dim": 4}, "recurrent_state()", 16 * 4),  # S: d_model × key_dim
        ("CachedDecay", {}, "past_key_values (ToyCache)", 16 + 2 * 16),  # running sum + a 2-token conv cache
        ("StatelessMix", {}, None, None),
    ],
)
def test_measured_state_in_each_accepted_form(cls, kwargs, how, numbers):
    config = _module_config(cls, **kwargs)
    if cls == "CachedDecay":
        config = ModelConfig(**{**_fields(config), "mixer_cache": f"{EXAMPLE}:ToyCache"})
    model = StackedHybrid([config], [0])
    x = torch.randint(0, 64, (12,), generator=torch.Generator().manual_seed(1))
    states, found = model.final_state(0, x)
    if how is None:
        assert states == {} and found.startswith("unmeasured")
        assert model.mixer.reported_state(0, 12) == 16  # a claim of the module's own, recorded beside
    else:
        assert found == how
        assert state_numbers(states) == 2 * 16 + numbers  # layer 0's conv cache (k−1 = 2 rows) and the mixer's


def _fields(config: ModelConfig) -> dict:
    return {
        "family": config.family,
        "d_model": config.d_model,
        "vocab_size": config.vocab_size,
        "max_len": config.max_len,
        "mixer": config.mixer,
        "mixer_kwargs": config.kwargs(),
    }


def test_the_cache_form_restores_a_missing_layer_index():
    from user_mixers_example import CachedDecay, ToyCache

    module = CachedDecay(8)  # layer_idx None
    states, how = measure_module_state(module, torch.randn(1, 5, 8), f"{EXAMPLE}:ToyCache")
    assert module.layer_idx is None and sum(t.numel() for t in states.values()) == 8 + 2 * 8
    assert isinstance(ToyCache(), ToyCache) and how.startswith("past_key_values")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mixer": f"{EXAMPLE}:Nope"}, "has no attribute 'Nope'"),
        ({"mixer": "no_such_package.mod:Cls"}, "cannot import module 'no_such_package.mod'"),
        ({"mixer": "torch:Tensor"}, "is not a torch.nn.Module subclass"),
        ({"mixer": f"{EXAMPLE}:StackedEMA"}, "a StackedMixer is a family"),
        ({"mixer_kwargs": {"nope": 1}}, "mixer_kwargs=.*does not take them"),
        ({"mixer_cache": "no_such_package:Cache"}, "mixer_cache="),
    ],
)
def test_bad_plain_modules_are_refused_before_any_work(fields, message):
    base = {"mixer": f"{EXAMPLE}:DeltaMemory", "mixer_kwargs": {}}
    with pytest.raises(ValueError, match=message):
        ModelConfig(GENERIC, 16, **{**base, **fields}).validate()


def test_a_module_of_the_wrong_output_shape_is_named():
    model = StackedHybrid([_module_config("WrongShape")], [0])
    with pytest.raises(ValueError, match="needs an output of the input's shape"):
        model(torch.zeros(1, 4, dtype=torch.long))


def test_a_users_family_is_stacked_like_a_built_in_one():
    family = f"{EXAMPLE}:StackedEMA"
    configs = [ModelConfig(family, 16, vocab_size=64, max_len=32, bits=b) for b in (1, 3)]
    model = StackedHybrid(configs, [0, 1])
    assert configs[0].label() == "StackedEMA-d16-b1" and model.mixer.compilable
    u = torch.randn(2, 2, 9, 16, generator=torch.Generator().manual_seed(2))
    for r in range(2):
        assert_close(model.mixer(u)[r], model.mixer.reference(r, u[r]), dtype="float32", context=f"run {r}")
    states, how = model.final_state(1, torch.randint(0, 64, (9,)))
    assert how == "recurrent mode" and state_numbers(states) == 2 * 16 + 16


SWEEP = """
name = "mine"
vocab_size = 64
epochs = 1
lrs = [0.003, 0.01]
seeds = [0, 1]
batch_size = 16
test_batch_size = 16

[[train]]
seq_len = 16
num_kv_pairs = 2
num_examples = 64

[[test]]
seq_len = 16
num_kv_pairs = 2
num_examples = 32

[[models]]
family = "attention"
d_model = 16

[[models]]
mixer = "user_mixers_example:DeltaMemory"
mixer_kwargs = { key_dim = 4 }
d_model = 16

[[models]]
mixer = "user_mixers_example:StatelessMix"
mixer_kwargs = { expand = 2 }
d_model = 16

[[models]]
family = "user_mixers_example:StackedEMA"
d_model = 16
bits = [1, 2]
"""


def test_cli_runs_a_sweep_file_with_users_mixers_on_the_cpu(tmp_path):
    """What a user does: a module on PYTHONPATH, a sweep file naming it, one command; every run finishes with
    per-slice accuracies and a state measured or marked unmeasured."""
    sweep, out = tmp_path / "mine.toml", tmp_path / "out.jsonl"
    sweep.write_text(SWEEP)
    env = {"PYTHONPATH": str(HERE), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "mqarkit.cli", "frontier", "run", "--sweep", str(sweep), "--out", str(out)]
    proc = subprocess.run([*cmd, "--device", "cpu"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = read_records(out)
    assert len(records) == len(parse_sweeps(SWEEP)[0].runs()) == 5 * 2 * 2
    assert all(r["status"] == "finished" and len(r["accuracy"]) == 1 for r in records)
    by_kind = {}
    for r in records:
        by_kind.setdefault(r["model"]["mixer"] or r["family"], []).append(r)
    assert all(r["state_measured"] and r["state_numbers"] > 0 for r in by_kind["attention"])
    assert all(
        r["state_measured"] and r["state_source"] == "recurrent_state()" for r in by_kind[f"{EXAMPLE}:DeltaMemory"]
    )
    stateless = by_kind[f"{EXAMPLE}:StatelessMix"]
    assert all(not r["state_measured"] and r["state_numbers"] is None and r["state_bytes"] is None for r in stateless)
    assert all(r["state_reported_numbers"] == 16 for r in stateless)
    assert {r["model"]["bits"] for r in by_kind[f"{EXAMPLE}:StackedEMA"]} == {1, 2}
    assert json.loads(out.read_text().splitlines()[0])["sweep"] == "mine"


def test_sweep_file_errors_name_the_file_the_entry_and_the_rule(tmp_path):
    bad = SWEEP.replace("bits = [1, 2]", "bits = [1, 0]")
    with pytest.raises(SweepFileError, match=r"mine.toml: models\[3\] \(user_mixers_example:StackedEMA\): bits=0"):
        path = tmp_path / "mine.toml"
        path.write_text(bad)
        from mqarkit.gpu.frontier.sweep_file import load_sweep_file

        load_sweep_file(path)


def test_a_parameter_no_loss_reaches_is_left_alone_like_torch_adamw():
    model = StackedHybrid([_module_config("DeltaMemory", key_dim=4)], [0])
    unused = torch.nn.Parameter(torch.ones(3))
    model.mixer.instances[0].register_parameter("unused", unused)
    opt = StackedAdamW(model, torch.tensor([1e-2]))
    x = torch.randint(0, 64, (2, 8))
    model.hidden_at(x, torch.tensor([[3], [5]])).square().sum().backward()
    opt.step(1.0)
    assert torch.equal(unused.detach(), torch.ones(3)) and float(opt.t) == 1.0


FAMILY_REFERENCE = "mqarkit.gpu.frontier.user_mixers:FamilyReference"


def test_a_familys_reference_as_a_plain_module_is_the_familys_math_with_its_state():
    kwargs = {"family": "based", "max_len": 16, "knobs": {"feature_dim": 4}}
    before = torch.random.get_rng_state()
    a, b, again = (build_module(FAMILY_REFERENCE, kwargs, 8, s) for s in (1, 2, 1))
    assert torch.equal(torch.random.get_rng_state(), before)
    assert isinstance(a.mixer, Based) and a.mixer.run_knobs == [{"feature_dim": 4}]
    assert torch.equal(a.mixer.q_w, again.mixer.q_w) and not torch.equal(a.mixer.q_w, b.mixer.q_w)
    u = torch.randn(3, 11, 8, generator=torch.Generator().manual_seed(5))
    assert_close(a(u), a.mixer(u[None])[0], dtype="float32", context="reference == the family's stacked forward")
    states, how = measure_module_state(a, u[:1], None)
    assert how == "recurrent_state()"
    assert state_numbers(states) == Based.state_formula(8, 16, {"feature_dim": 4}, 11)


def test_a_familys_reference_trains_through_the_generic_path():
    cfg = ModelConfig(
        GENERIC,
        8,
        vocab_size=64,
        max_len=16,
        mixer=FAMILY_REFERENCE,
        mixer_kwargs={"family": "attention", "max_len": 16},
    )
    model = StackedHybrid([cfg] * 2, [3, 4])
    opt = StackedAdamW(model, torch.tensor([1e-2, 1e-2]))
    x = torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(0))
    before = [p.detach().clone() for p in model.mixer.parameters()]
    model(x).square().mean().backward()
    opt.step()
    assert all(not torch.equal(p, q) for p, q in zip(model.mixer.parameters(), before))
    with pytest.raises(ValueError, match="family='nope': unknown"):
        build_module(FAMILY_REFERENCE, {"family": "nope", "max_len": 16}, 8, 0)
