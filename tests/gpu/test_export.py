"""Exports in zoology's layouts, checked by loading them into our zoology-semantics modules (golden key maps)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mqarkit.constructions import build, names
from mqarkit.gpu.export import export_layer, export_state_dict, export_width, fit_report
from mqarkit.gpu.golden import CONTRACTS
from mqarkit.polynomials import (
    BaseConv,
    CausalConv,
    LinearAttention,
    SoftmaxAttention,
    TaylorMap,
    UnnormalisedAttention,
    evaluate,
)
from mqarkit.tolerances import assert_close

N = 10


def distinct(rng: np.random.Generator, *shape: int) -> np.ndarray:
    size = int(np.prod(shape))
    return rng.permutation((np.arange(size) + 1.0) / size * np.sign(rng.standard_normal(size))).reshape(shape)


def zoology_module(op, contract: str) -> torch.nn.Module:
    """Our zoology-semantics module of the op's export width, loaded through the golden contract's key map."""
    width, c = export_width(op), CONTRACTS[contract]
    if isinstance(op, CausalConv):
        from mqarkit.gpu.mixers.baseconv import BaseConv as Ours

        module = Ours(width, N, kernel_size=op.taps.shape[0], semantics="zoology")
    elif isinstance(op, SoftmaxAttention):
        from mqarkit.gpu.mixers.attention import SoftmaxAttention as Ours

        module = Ours(width, num_heads=1, mask="causal")
    else:
        from mqarkit.gpu.mixers.based import BasedLinearAttention as Ours

        module = Ours(width, feature_dim=op.key_width, layout="full", eps=1e-12, impl="torch")
    exported = export_layer(op)
    assert set(exported) == set(c.key_map), "export keys must be zoology's parameter names"
    module = module.double()
    module.load_state_dict({c.key_map[k]: v for k, v in exported.items()}, strict=True)
    return module


@pytest.mark.parametrize(
    "make,contract",
    [
        (lambda r: CausalConv(distinct(r, 3, 5)), "baseconv_short3"),
        (
            lambda r: SoftmaxAttention(
                distinct(r, 5, 3), distinct(r, 5, 3), distinct(r, 5, 4), beta=1.3, wo=distinct(r, 4, 5)
            ),
            "mha_1head",
        ),
        (
            lambda r: LinearAttention(
                distinct(r, 6, 3),
                distinct(r, 6, 3),
                distinct(r, 6, 6),
                TaylorMap(3, scale=False),
                normalise=True,
                eps=1e-12,
            ),
            "based_taylor_f4_quadratic",
        ),
    ],
)
def test_fitting_ops_reproduce_the_ir_in_zoology_modules(make, contract: str) -> None:
    rng = np.random.default_rng(0)
    op = make(rng)
    module = zoology_module(op, contract)
    x = distinct(rng, 2, N, op.in_width)
    padded = torch.nn.functional.pad(torch.from_numpy(x), (0, export_width(op) - op.in_width))
    with torch.no_grad():
        got = module(padded)[..., : op.out_width]
    assert_close(got, evaluate(op, x), dtype="float64", context=f"{op.label} exported")


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda r: BaseConv(distinct(r, 4, 4), distinct(r, 2, 4)), r"\+ u"),
        (
            lambda r: SoftmaxAttention(distinct(r, 4, 2), distinct(r, 4, 2), distinct(r, 4, 2), 1.0, mask="strict"),
            "mask is causal",
        ),
        (lambda r: UnnormalisedAttention(distinct(r, 4, 2), distinct(r, 4, 2), distinct(r, 4, 2)), "softmax-free"),
        (
            lambda r: LinearAttention(
                distinct(r, 4, 2), distinct(r, 4, 2), distinct(r, 4, 2), TaylorMap(2), normalise=False
            ),
            "unnormalised",
        ),
    ],
)
def test_misfits_raise_with_the_reason(make, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        export_layer(make(np.random.default_rng(1)))


def test_registered_constructions_report_per_layer() -> None:
    for name in names():
        knobs = {"window": 4} if name == "sliding_window" else {}
        con = build(name, vocab_size=12, seq_len=10, num_kv_pairs=2, **knobs)
        report = fit_report(con)
        assert len(report) == len(con.model.layers)
        if all(why is None for _, _, why in report):
            state = export_state_dict(con)
            assert all(key.startswith("layers.") for key in state)
        else:
            with pytest.raises(ValueError, match="does not fit layout 'zoology'"):
                export_state_dict(con)


def test_signcode_shift_fits_and_lookup_does_not() -> None:
    con = build("attention_signcode", vocab_size=12, seq_len=10, num_kv_pairs=2)
    (i0, _, why0), (i1, _, why1) = fit_report(con)
    assert why0 is None and "strict" in why1
    with pytest.raises(ValueError, match="layout="):
        export_layer(con.model.layers[0].op, layout="hf")
