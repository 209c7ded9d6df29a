"""The checked weight mapping every loader uses (design.md principle 6).

A mapping is a list of :class:`Entry` records, one per ``state_dict`` key of the target module: the key, where its
tensor comes from in the IR (``source``, e.g. ``"wq.T * beta*sqrt(e)"``), whether the IR array is transposed, and the
tensor itself. :func:`load_checked` asserts each tensor's shape against the module's own parameter (the error names
the key and both shapes), requires the mapping to cover the module's keys exactly, and loads with
``load_state_dict(strict=True)``, in float64 (the caller casts afterwards). The entries stay on the loaded
layer (``key_map``) so that a reader can audit them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mqarkit.polynomials.weights import to_float64


@dataclass(frozen=True)
class Entry:
    key: str  # state_dict key of the target module
    source: str  # the IR field (and the algebra applied to it), for the audit trail
    transposed: bool  # whether the IR array is transposed on the way
    tensor: torch.Tensor  # float64, the exact shape of the target parameter


def ir_array(arr: np.ndarray) -> torch.Tensor:
    """An IR weight (int64, float64 or exact object array) as a float64 tensor (exact numbers rounded to nearest)."""
    return torch.from_numpy(np.array(to_float64(np.asarray(arr)), dtype=np.float64, copy=True))


def embed_block(shape: tuple[int, ...], block: torch.Tensor) -> torch.Tensor:
    """A zero ``shape`` tensor with ``block`` in its leading corner (pads an IR matrix to a square mixer)."""
    out = torch.zeros(shape, dtype=torch.float64)
    if any(b > s for b, s in zip(block.shape, shape)):
        raise ValueError(f"block of shape {tuple(block.shape)} does not fit in {shape}")
    out[tuple(slice(0, b) for b in block.shape)] = block
    return out


def load_checked(module: nn.Module, entries: list[Entry], what: str) -> dict[str, str]:
    """Assert shapes, load with ``strict=True``; return the audit key map ``{key: source}``.

    ``what`` names the layer in errors (e.g. ``"layer 1 (SoftmaxAttention)"``).
    """
    module.to(torch.float64)  # load exactly; the caller casts the loaded model to its dtype afterwards
    ours = module.state_dict()
    keys = [e.key for e in entries]
    if sorted(keys) != sorted(ours):
        raise ValueError(f"{what}: key map {sorted(keys)} does not cover the module's keys {sorted(ours)} exactly")
    state = {}
    for e in entries:
        want = tuple(ours[e.key].shape)
        if tuple(e.tensor.shape) != want:
            raise ValueError(
                f"{what}: {e.key} from {e.source} has shape {tuple(e.tensor.shape)}, the module needs {want}"
            )
        state[e.key] = e.tensor.to(ours[e.key].dtype)
    module.load_state_dict(state, strict=True)
    return {e.key: e.source + (" (transposed)" if e.transposed else "") for e in entries}
