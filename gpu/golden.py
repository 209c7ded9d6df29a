"""Golden contracts: load zoology's reference parameters into our mixers and reproduce its outputs.

Each contract is an explicit, checked mapping (design.md principle 6): a key map from zoology's parameter names to
ours, the list of transposes / reorders (none is needed: every reference tensor already has our layout, which the
shape assertions prove), a shape assertion per tensor, and ``load_state_dict(strict=True)`` into our module built in
zoology semantics. The golden files ship with the package (:mod:`mqarkit.golden_data`: ``mqarkit/golden/zoology``, a
copy of the workspace's ``shared/golden``; ``MQARKIT_GOLDEN_DIR`` chooses another folder); the input is
``x: (2, 16, 8)`` float64, the output ``y`` is what the reference module returned.

Semantics that make the maps work (theory.md §4.5):

- ``BaseConv``: ``BaseConv(semantics="zoology")``; zoology's ``conv.conv.weight (d, 1, k)`` is Conv1d layout (lag
  ``s`` at ``k-1-s``), kept as is in our ``conv_weight``; ``conv.filter (d, L)`` is lag-ordered, our ``filter``.
- ``MHA``: ``SoftmaxAttention(mask="causal")`` with the same fused ``Wqkv (3d, d)`` split ``(three, H, e)``.
- ``Based``: ``BasedLinearAttention(layout="full", eps=1e-12)``; both training views of the reference are one
  function (they agree to 2.5e-16), so one map serves both files.
- ``SlidingAttn(block_size=w)`` admits ``w + 1`` keys: it is our ``SlidingWindowAttention(window=w + 1)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mqarkit.golden_data import zoology_golden_dir
from mqarkit.gpu.mixers.attention import SlidingWindowAttention, SoftmaxAttention
from mqarkit.gpu.mixers.baseconv import BaseConv
from mqarkit.gpu.mixers.based import BasedLinearAttention


def default_golden_dir() -> Path:
    """The folder of zoology's golden files (:func:`mqarkit.golden_data.zoology_golden_dir`)."""
    return zoology_golden_dir()


@dataclass(frozen=True)
class GoldenContract:
    """How one golden file maps onto one of our modules."""

    name: str  # file stem under golden/zoology
    build: Callable[[], nn.Module]  # our module in zoology semantics
    key_map: dict[str, str]  # zoology parameter name -> our state_dict key
    transposes: tuple[str, ...] = field(default=())  # zoology names whose tensor is transposed (.T) before loading
    note: str = ""


CONTRACTS: dict[str, GoldenContract] = {
    c.name: c
    for c in (
        GoldenContract(
            "baseconv_short3",
            lambda: BaseConv(8, 16, kernel_size=3, semantics="zoology"),
            {
                "projection.weight": "projection.weight",
                "projection.bias": "projection.bias",
                "conv.conv.weight": "conv_weight",
                "conv.conv.bias": "conv_bias",
            },
            note="Conv1d layout kept: lag s at weight[..., k-1-s]",
        ),
        GoldenContract(
            "baseconv_long_explicit",
            lambda: BaseConv(8, 16, kernel_size=None, semantics="zoology"),
            {"projection.weight": "projection.weight", "projection.bias": "projection.bias", "conv.filter": "filter"},
            note="filter (d, L) lag-ordered; the FFT path's extra +u is our zoology long conv's +e_0",
        ),
        GoldenContract(
            "mha_1head",
            lambda: SoftmaxAttention(8, num_heads=1, mask="causal"),
            {k: k for k in ("Wqkv.weight", "Wqkv.bias", "out_proj.weight", "out_proj.bias")},
        ),
        GoldenContract(
            "mha_2head",
            lambda: SoftmaxAttention(8, num_heads=2, mask="causal"),
            {k: k for k in ("Wqkv.weight", "Wqkv.bias", "out_proj.weight", "out_proj.bias")},
        ),
        GoldenContract(
            "based_taylor_f4_quadratic",
            lambda: BasedLinearAttention(8, feature_dim=4, num_heads=1, layout="full", eps=1e-12, impl="torch"),
            {k: k for k in ("proj_q.weight", "proj_k.weight", "proj_v.weight", "proj_o.weight")},
        ),
        GoldenContract(
            "based_taylor_f4_linear",
            lambda: BasedLinearAttention(8, feature_dim=4, num_heads=1, layout="full", eps=1e-12, impl="torch"),
            {k: k for k in ("proj_q.weight", "proj_k.weight", "proj_v.weight", "proj_o.weight")},
        ),
        GoldenContract(
            "sliding_w4",
            lambda: SlidingWindowAttention(8, window=5),
            {k: k for k in ("Wqkv.weight", "Wqkv.bias", "out_proj.weight", "out_proj.bias")},
            note="block_size=4 admits 5 keys: window=5",
        ),
    )
}


def load_golden_arrays(name: str, golden_dir: Path | None = None) -> dict[str, np.ndarray]:
    """All arrays of ``<golden_dir>/<name>.npz``."""
    if name not in CONTRACTS:
        raise ValueError(f"name={name!r}: unknown golden mixer; known: {sorted(CONTRACTS)}")
    path = (golden_dir or default_golden_dir()) / f"{name}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"golden file {path} not found (golden_dir={golden_dir}; see mqarkit.golden_data)")
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def load_contract(name: str, golden_dir: Path | None = None) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Our module (float64) holding the reference parameters, the golden input ``x`` and output ``y``."""
    contract = CONTRACTS.get(name)
    arrays = load_golden_arrays(name, golden_dir)
    module = contract.build().double()
    ours = module.state_dict()
    given = {key.removeprefix("param:") for key in arrays if key.startswith("param:")}
    if given != set(contract.key_map):
        raise ValueError(f"{name}: golden parameters {sorted(given)} != key map {sorted(contract.key_map)}")
    state: dict[str, torch.Tensor] = {}
    for src, dst in contract.key_map.items():
        tensor = torch.from_numpy(arrays[f"param:{src}"]).to(torch.float64)
        if src in contract.transposes:
            tensor = tensor.T.contiguous()
        if dst not in ours:
            raise ValueError(f"{name}: key map target {dst!r} is not a parameter of {type(module).__name__}")
        if tuple(tensor.shape) != tuple(ours[dst].shape):
            raise ValueError(f"{name}: {src} has shape {tuple(tensor.shape)}, {dst} needs {tuple(ours[dst].shape)}")
        state[dst] = tensor
    module.load_state_dict(state, strict=True)
    x = torch.from_numpy(arrays["x"]).to(torch.float64)
    y = torch.from_numpy(arrays["y"]).to(torch.float64)
    return module, x, y


def reported_state_sizes(golden_dir: Path | None = None) -> dict[str, float]:
    """``state_size`` the reference reports at sequence length 16, by golden name (from ``mixers_index.json``)."""
    index = json.loads(((golden_dir or default_golden_dir()) / "mixers_index.json").read_text())
    return {Path(entry["file"]).stem: entry["state_size_reported"] for entry in index}
