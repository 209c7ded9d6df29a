"""Golden contracts: zoology's parameters loaded into our mixers reproduce zoology's outputs in float64."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from mqarkit.gpu.golden import CONTRACTS, default_golden_dir, load_contract, load_golden_arrays, reported_state_sizes
from mqarkit.tolerances import assert_close

GOLDEN = default_golden_dir()  # shipped with the package: always there (a missing folder raises here)
STATE_DOC = Path(__file__).resolve().parents[2] / "docs" / "results" / "golden_state.md"


def test_all_seven_golden_mixers_have_contracts() -> None:
    assert len(CONTRACTS) == 7


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_golden_output_reproduced(name: str) -> None:
    module, x, y = load_contract(name)
    assert x.shape == (2, 16, 8)
    assert_close(module(x), y, dtype="float64", context=f"{name} forward")
    assert_close(module.reference(x), y, dtype="float64", context=f"{name} reference")
    assert_close(module.recurrent(x), y, dtype="float64", context=f"{name} recurrent")


@pytest.mark.parametrize("name", sorted(CONTRACTS))
def test_golden_fails_when_a_matrix_is_transposed_or_swapped(name: str) -> None:
    """The contract is sensitive: transposing the first square matrix (or swapping two same-shaped ones) breaks it."""
    module, x, y = load_contract(name)
    state = module.state_dict()
    square = [k for k, v in state.items() if v.dim() == 2 and v.shape[0] == v.shape[1]]
    assert square, name
    broken = dict(state)
    broken[square[0]] = state[square[0]].T.contiguous()
    module.load_state_dict(broken, strict=True)
    with pytest.raises(AssertionError):
        assert_close(module(x), y, dtype="float64")


def test_shape_mismatch_is_rejected(tmp_path: Path) -> None:
    arrays = load_golden_arrays("baseconv_short3")
    arrays["param:conv.conv.weight"] = arrays["param:conv.conv.weight"][..., :2]
    np.savez(tmp_path / "baseconv_short3.npz", **arrays)
    with pytest.raises(ValueError, match=r"conv\.conv\.weight has shape"):
        load_contract("baseconv_short3", tmp_path)


def test_unknown_name_rejected() -> None:
    with pytest.raises(ValueError, match="name='nope'"):
        load_golden_arrays("nope")


def test_state_doc_matches_measured_and_reported() -> None:
    """docs/results/golden_state.md lists, per golden mixer, the reference's number and our measured one."""
    text = STATE_DOC.read_text()
    reported = reported_state_sizes()
    for name in CONTRACTS:
        module, _, _ = load_contract(name)
        row = re.search(rf"^\| `{name}` \| [^|]+ \| (\d+) \| (\d+) \|", text, flags=re.M)
        assert row is not None, f"{name} missing from {STATE_DOC}"
        assert int(row.group(1)) == int(reported[name])
        assert int(row.group(2)) == module.state_numbers(16) == module.state_formula(16)


def test_loaded_modules_are_float64() -> None:
    module, _, _ = load_contract("mha_2head")
    assert all(p.dtype == torch.float64 for p in module.parameters())
