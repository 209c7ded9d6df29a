"""Our reference-layout LanguageModel reproduces the golden whole models and loads only the exact reference layout."""

from __future__ import annotations

import copy

import pytest
import torch

from mqarkit.gpu.golden import default_golden_dir
from mqarkit.gpu.golden_models import golden_model_entries, load_golden_model
from mqarkit.gpu.reference_model import (
    from_config,
    load_reference_state_dict,
    reference_key_map,
    reference_state_dict,
    state_size_reported,
)
from mqarkit.tolerances import assert_close

GOLDEN = default_golden_dir()  # shipped with the package: always there (a missing folder raises here)
NAMES = ("lm_attention_hybrid", "lm_based_hybrid", "lm_baseconv_only")


def test_every_golden_model_is_covered() -> None:
    assert sorted(golden_model_entries()) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_golden_logits_reproduced(name: str) -> None:
    model, inputs, logits, entry = load_golden_model(name)
    with torch.no_grad():
        assert_close(model(inputs), logits, dtype="float64", context=f"{name} logits")
    assert state_size_reported(model, entry["state_size_sequence_length"]) == entry["state_size_reported"]


@pytest.mark.parametrize("name", NAMES)
def test_key_map_covers_the_stored_state_dict_exactly(name: str) -> None:
    model, _, _, entry = load_golden_model(name)
    assert sorted(reference_key_map(model)) == sorted(entry["state_dict"])
    exported = reference_state_dict(model)
    assert {k: list(v.shape) for k, v in exported.items()} == entry["state_dict"]


@pytest.mark.parametrize("name", NAMES)
def test_every_swapped_or_transposed_matrix_breaks_the_logits(name: str) -> None:
    """Distinct-valued (random) golden weights: transposing any square matrix, or swapping two same-shaped tensors
    of one layer, moves the logits."""
    model, inputs, logits, _ = load_golden_model(name)
    state = reference_state_dict(model)
    square = [k for k, v in state.items() if v.dim() == 2 and v.shape[0] == v.shape[1]]
    assert square
    for key in square:
        broken = dict(state)
        broken[key] = state[key].T.contiguous()
        fresh = from_config(model.config)
        load_reference_state_dict(fresh, broken)
        with torch.no_grad(), pytest.raises(AssertionError):
            assert_close(fresh(inputs), logits, dtype="float64", context=key)
    for layer in range(2):
        n1, n2 = f"backbone.layers.{layer}.norm1.weight", f"backbone.layers.{layer}.norm2.weight"
        swapped = dict(state)
        swapped[n1], swapped[n2] = state[n2], state[n1]
        fresh = from_config(model.config)
        load_reference_state_dict(fresh, swapped)
        with torch.no_grad(), pytest.raises(AssertionError):
            assert_close(fresh(inputs), logits, dtype="float64", context=f"{n1} <-> {n2}")


def test_loading_rejects_missing_extra_misshaped_and_untied() -> None:
    model, _, _, _ = load_golden_model("lm_attention_hybrid")
    state = reference_state_dict(model)
    fresh = from_config(model.config)
    missing = {k: v for k, v in state.items() if k != "backbone.ln_f.bias"}
    with pytest.raises(ValueError, match="missing \\['backbone.ln_f.bias'\\]"):
        load_reference_state_dict(fresh, missing)
    with pytest.raises(ValueError, match="unexpected \\['extra'\\]"):
        load_reference_state_dict(fresh, {**state, "extra": torch.zeros(1)})
    key = "backbone.layers.1.sequence_mixer.mixer.Wqkv.weight"
    with pytest.raises(ValueError, match="Wqkv.weight has shape \\(16, 48\\)"):
        load_reference_state_dict(fresh, {**state, key: state[key].T})
    untied = {**state, "lm_head.weight": state["lm_head.weight"] + 1}
    with pytest.raises(ValueError, match="tied"):
        load_reference_state_dict(fresh, untied)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_position_embeddings", 64, "max_position_embeddings=64"),
        ("state_mixer", {"name": "zoology.mixers.mlp.MLP", "kwargs": {}}, "state_mixer"),
        ("learnable_word_embeddings", False, "learnable_word_embeddings=False"),
        ("d_model", 0, "d_model=0"),
        ("sequence_mixer", {"name": "zoology.mixers.hyena.Hyena", "kwargs": {}}, "not implemented here"),
    ],
)
def test_unsupported_configs_are_named(field: str, value: object, message: str) -> None:
    config = copy.deepcopy(golden_model_entries()["lm_attention_hybrid"]["config"])
    config[field] = value
    with pytest.raises(ValueError, match=message):
        from_config(config)


def test_inputs_are_validated() -> None:
    config = {
        "sequence_mixer": {"name": "zoology.mixers.attention.MHA", "kwargs": {"num_heads": 1}},
        "state_mixer": {"name": "torch.nn.Identity", "kwargs": {}},
        "d_model": 8,
        "n_layers": 1,
        "vocab_size": 10,
        "max_position_embeddings": 0,
        "learnable_word_embeddings": True,
        "embedding_init_type": "default",
        "pad_vocab_size_multiple": 1,
        "block_type": "TransformerBlock",
    }
    model = from_config(config)
    with pytest.raises(ValueError, match="token ids must lie in \\[0, vocab_size=10\\)"):
        model(torch.tensor([[0, 10]]))
    with pytest.raises(ValueError, match="int64"):
        model(torch.zeros(1, 2))
