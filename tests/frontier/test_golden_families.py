"""The golden H3 and Hyena outputs of the reference implementation, reproduced by one run of the ``h3`` and ``hyena``
families loaded through :mod:`mqarkit.gpu.frontier.families.golden_map` (float64).

Hyena to float64 precision. H3 to float32 precision relative to the output's scale: the reference computes its shift
kernel, the rfft of that kernel and one product ``B·C`` in single precision even in a float64 module (golden README);
the file's ``aux:`` kernels show where: ours equal them to float32 precision, and our float64 ``y`` differs from the
golden ``y`` by exactly what the reference's own float64 rerun moved it by (the index's ``precision`` figures, to the
three digits it gives), with or without the reference's kernels plugged in.

The maps are checked to matter: the golden parameters are distinct random values, so a transposed, swapped or
unpermuted matrix moves the output far outside the tolerance (not a swap of the diagonal SSM's ``B`` and ``C``: the
output depends on their product only, the carried state does not), and a wrong shape, a missing or unknown key,
untied frequencies or a changed buffer are refused.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mqarkit.golden_data import golden_file
from mqarkit.gpu.frontier.families import family_class
from mqarkit.gpu.frontier.families.golden_map import (
    GOLDEN_FAMILIES,
    golden_case,
    h3_from_reference,
    hyena_from_reference,
    load_run,
)
from mqarkit.tolerances import assert_close, assert_close_scaled

H3_CASES = ["h3_hd2_n2", "h3_hd2_n16"]


def _state(name: str) -> dict[str, torch.Tensor]:
    with np.load(golden_file(f"{name}.npz")) as arrays:
        return {k.removeprefix("param:"): torch.from_numpy(arrays[k].copy()) for k in arrays.files if "param:" in k}


def _output(family: str, knobs: dict, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``reference(0, x)`` of a fresh float64 run loaded with ``params``."""
    mixer = family_class(family)(8, 16, [knobs], [torch.Generator().manual_seed(0)]).to(torch.float64)
    load_run(mixer, 0, params)
    with torch.no_grad():
        return mixer.reference(0, x)


def test_hyena_reproduces_the_golden_output_to_float64_precision():
    case = golden_case("hyena_default")
    with torch.no_grad():
        reference, fast = case.mixer.reference(0, case.x), case.mixer(case.x[None])[0]
        qpos = torch.tensor([[0, 7, 15], [3, 3, 12]])
        at = case.mixer.forward_at(case.x[None], qpos)[0]
    assert_close(reference, case.y, dtype="float64", context="hyena reference")
    assert_close(fast, case.y, dtype="float64", context="hyena fast path")
    assert_close(at, torch.stack([case.y[b, qpos[b]] for b in range(2)]), dtype="float64", context="hyena rows")


@pytest.mark.parametrize("name", H3_CASES)
def test_h3_kernels_equal_the_references_to_float32_precision(name):
    case = golden_case(name)
    with torch.no_grad():
        shift, diagonal = case.mixer.reference_kernels(0, 16)
        fast_shift, fast_diagonal = (k[0] for k in case.mixer.kernels(16, torch.float64))
    for ours, kind in ((shift, "ssm_k_kernel"), (diagonal, "ssm_kernel")):
        assert_close(ours, case.aux[kind], dtype="float32", context=f"{name} {kind}")
    assert_close(fast_shift, shift, dtype="float64", context=f"{name} fast shift kernel")
    assert_close(fast_diagonal, diagonal, dtype="float64", context=f"{name} fast diagonal kernel")
    precision = case.entry["precision"]
    for ours, kind, key in ((shift, "ssm_k_kernel", "shift"), (diagonal, "ssm_kernel", "diag")):
        moved = float((ours - case.aux[kind]).abs().max())
        assert f"{moved:.2e}" == f"{precision[f'max_abs_change_{key}_kernel_float64']:.2e}", (name, kind, moved)


@pytest.mark.parametrize("name", H3_CASES)
def test_h3_reproduces_the_golden_output_to_the_references_single_precision(name):
    case = golden_case(name)
    precision = case.entry["precision"]
    with torch.no_grad():
        reference, fast = case.mixer.reference(0, case.x), case.mixer(case.x[None])[0]
        given = case.mixer.reference_from_kernels(0, case.x, case.aux["ssm_k_kernel"], case.aux["ssm_kernel"])
    assert_close_scaled(reference, case.y, dtype="float32", context=f"{name} reference")
    assert_close(fast, reference, dtype="float64", context=f"{name} fast path against reference")
    assert_close_scaled(given, case.y, dtype="float32", context=f"{name} given the reference's kernels")
    for ours, key in ((reference, "max_abs_change_all_float64"), (given, "max_abs_change_float64_given_aux_kernels")):
        moved = float((ours - case.y).abs().max())
        assert f"{moved:.2e}" == f"{precision[key]:.2e}", (name, key, moved)


@pytest.mark.parametrize("name", H3_CASES)
def test_a_wrong_h3_map_moves_the_output(name):
    case = golden_case(name)
    knobs = dict(case.mixer.run_knobs[0])
    right = h3_from_reference(_state(name), d_model=8, **knobs)
    assert_close_scaled(_output("h3", knobs, right, case.x), case.y, dtype="float32", context=f"{name} right map")
    heads = 8 // knobs["head_dim"]
    wrong = {
        "q_w not transposed": {"q_w": right["q_w"].T},
        "q and k swapped": {"q_w": right["k_w"], "k_w": right["q_w"], "q_b": right["k_b"], "k_b": right["q_b"]},
        "o_w rows not permuted": {"o_w": _state(name)["output_linear.weight"].T},
        "ssm C's (re, im) swapped": {"ssm_c": right["ssm_c"].flip(-1)},
        "a_re and a_im swapped": {"a_re": right["a_im"], "a_im": right["a_re"]},
        "shift B and C swapped": {"shift_b": right["shift_c"], "shift_c": right["shift_b"]},
        "heads reversed": {"log_dt": right["log_dt"].flip(0), "ssm_skip": right["ssm_skip"].flip(0)},
    }
    assert heads > 1
    for what, change in wrong.items():
        out = _output("h3", knobs, right | change, case.x)
        with pytest.raises(AssertionError):
            assert_close_scaled(out, case.y, dtype="float32", context=f"{name}: {what}")


def test_a_wrong_hyena_map_moves_the_output():
    case = golden_case("hyena_default")
    right = hyena_from_reference(_state("hyena_default"), d_model=8, l_max=16)
    assert_close(_output("hyena", {}, right, case.x), case.y, dtype="float64", context="right map")
    wrong = {
        "short filter taps not reversed": {"short_k": right["short_k"].flip(-1)},
        "o_w not transposed": {"o_w": right["o_w"].T},
        "filter layers 1 and 2 swapped": {"filter_w1": right["filter_w2"], "filter_w2": right["filter_w1"]},
        "filter w1 transposed": {"filter_w1": right["filter_w1"].T},
        "positional embedding columns swapped": {"filter_z": right["filter_z"][:, [0, 2, 1]]},
    }
    for what, change in wrong.items():
        out = _output("hyena", {}, right | change, case.x)
        with pytest.raises(AssertionError):
            assert_close(out, case.y, dtype="float64", context=what)
    mixer = family_class("hyena")(8, 16, [{}], [torch.Generator()])
    with pytest.raises(ValueError, match="in_w has shape \\(24, 8\\), run 0 needs"):
        load_run(mixer, 0, right | {"in_w": right["in_w"].T})


def test_the_maps_refuse_bad_reference_states():
    h3, hyena = _state("h3_hd2_n2"), _state("hyena_default")
    h3_args, hyena_args = {"d_model": 8, "d_state": 2, "head_dim": 2}, {"d_model": 8, "l_max": 16}
    with pytest.raises(ValueError, match="reference key 'D' missing"):
        h3_from_reference({k: v for k, v in h3.items() if k != "D"}, **h3_args)
    with pytest.raises(ValueError, match="reference keys not mapped: \\['extra'\\]"):
        h3_from_reference(h3 | {"extra": torch.zeros(1)}, **h3_args)
    with pytest.raises(ValueError, match="'kernel.kernel.log_dt' has shape \\(4,\\), expected \\(2,\\)"):
        h3_from_reference(h3, d_model=8, d_state=2, head_dim=4)
    freq = "filter_fn.implicit_filter.3.freq"
    with pytest.raises(ValueError, match="freq differ"):
        hyena_from_reference(hyena | {freq: hyena[freq] + 1}, **hyena_args)
    deltas = "filter_fn.modulation.deltas"
    with pytest.raises(ValueError, match="buffer 'filter_fn.modulation.deltas' differs"):
        hyena_from_reference(hyena | {deltas: hyena[deltas] * 2}, **hyena_args)
    mixer = family_class("h3")(8, 16, [{"d_state": 2, "head_dim": 2}], [torch.Generator()])
    params = h3_from_reference(h3, **h3_args)
    with pytest.raises(ValueError, match="parameters missing \\['o_b'\\], unknown \\[\\]"):
        load_run(mixer, 0, {k: v for k, v in params.items() if k != "o_b"})
    with pytest.raises(ValueError, match="name='mha_1head': choose from"):
        golden_case("mha_1head")


def test_every_golden_family_entry_is_covered():
    assert set(GOLDEN_FAMILIES) == {"hyena_default", *H3_CASES}
