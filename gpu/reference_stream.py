"""The stream every reference-format export shares: embedding, the shift layer, muted paths, the readout.

Glossary and derivation: :mod:`mqarkit.gpu.reference_export` (blocks ``T, P, R`` of width ``m``, balanced codes
``b(u)``, ``kappa0``, ``kappa1``, ``rho``). This module holds what the attention and Based exports have in common:
the ``ModelConfig`` of the [B] Fig. 2 hybrid, the LayerNorm scales of the stream, the embedding / layer-0 / LayerNorm
/ ``ln_f`` weights, the size checks, and the checked load that returns an export in the reference's key order.

``check = Lambda > 0`` (the sliding-window export's no-match path, derived there): a fourth block
``F = [3m, 4m)`` holds ``b(u)`` in the embedding too, and layer 0 scales it to ``r1_F = Lambda b(x_t)`` (gate 1, tap
``h[0] = (Lambda - 1 - kappa0)/kappa0``: ``r1_F = b + kappa0 b + h[0] kappa0 b``); ``kappa0`` and ``kappa1`` then
count four embedding blocks and ``F``'s energy ``Lambda^2 m``. ``check = 0`` gives the three-block stream unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from mqarkit.constructions._balanced_codes import balanced_code_width
from mqarkit.gpu.reference_model import (
    BASECONV,
    HYBRID,
    IDENTITY,
    load_reference_model,
    reference_state_dict,
)

LN_EPS = 1e-5
SHORT_KERNEL = 3  # the [B] Fig. 2 hybrids' short convolution


@dataclass(frozen=True)
class ReferenceExport:
    config: dict  # the reference ModelConfig keyword arguments
    state: dict[str, torch.Tensor]  # reference key -> float64 tensor
    info: dict = field(default_factory=dict)  # layer mapping, width, knobs


def model_config(lookup_mixer: dict, *, d_model: int, vocab_size: int, seq_len: int, name: str) -> dict:
    """The [B] Fig. 2 hybrid's ``ModelConfig`` kwargs with ``lookup_mixer`` as layer 1 (dropouts 0)."""
    conv = {"name": BASECONV, "kwargs": {"l_max": seq_len, "kernel_size": SHORT_KERNEL, "implicit_long_conv": True}}
    return {
        "sequence_mixer": {"name": HYBRID, "kwargs": {"configs": [conv, lookup_mixer]}},
        "state_mixer": {"name": IDENTITY, "kwargs": {}},
        "d_model": d_model,
        "n_layers": 2,
        "max_position_embeddings": 0,
        "learnable_word_embeddings": True,
        "embedding_init_type": "default",
        "vocab_size": vocab_size,
        "resid_dropout": 0.0,
        "embed_dropout": 0.0,
        "drop_path": 0.0,
        "layer_norm_epsilon": LN_EPS,
        "pad_vocab_size_multiple": 1,
        "block_type": "TransformerBlock",
        "name": name,
    }


def stream_scales(code_width: int, d_model: int, check: float = 0.0) -> tuple[float, float, float]:
    """``(kappa0, kappa1, rho)`` of the module docstring (``check``: the scale ``Lambda`` of block ``F``, or 0)."""
    m, d = code_width, d_model
    embedded = 4 if check else 3
    kappa0 = 1.0 / math.sqrt(embedded * m / d + LN_EPS)
    kappa1 = 1.0 / math.sqrt(((1 + kappa0) ** 2 + kappa0**2 + check**2) * m / d + LN_EPS)
    kappa1_first = 1.0 / math.sqrt(((1 + kappa0) ** 2 + check**2) * m / d + LN_EPS)
    return kappa0, kappa1, kappa1_first / kappa1


def blocks(m: int) -> tuple[slice, slice, slice]:
    return slice(0, m), slice(m, 2 * m), slice(2 * m, 3 * m)


def check_block(m: int) -> slice:
    """Block ``F = [3m, 4m)`` of the no-match path (module docstring)."""
    return slice(3 * m, 4 * m)


def shared_weights(codes: np.ndarray, d: int, layer0: str, layer1: str, check: float = 0.0) -> dict[str, torch.Tensor]:
    """Embedding, layer 0 (the shift), the four LayerNorms' gains: the module docstring's layer 0 and muted paths
    (``check > 0``: also block ``F``, scaled to ``r1_F = check * b(x_t)``)."""
    c, m = codes.shape
    T, P, R = blocks(m)
    kappa0, _, _ = stream_scales(m, d, check)
    emb = torch.zeros(c, d, dtype=torch.float64)
    book = torch.from_numpy(codes.astype(np.float64))
    emb[:, T], emb[:, P], emb[:, R] = book, book, book
    taps = torch.zeros(d, SHORT_KERNEL, dtype=torch.float64)  # lag-ordered: taps[q, s] multiplies a[t - s, q]
    taps[P, 1] = 1.0
    taps[P, 0] = -(1 + kappa0) / kappa0
    taps[R, 0] = -(1 + kappa0) / kappa0
    gate = torch.zeros(d, dtype=torch.float64)
    gate[P], gate[R] = 1.0, 1.0
    if check:
        F = check_block(m)
        emb[:, F] = book
        taps[F, 0] = (check - 1 - kappa0) / kappa0  # r1_F = (1 + kappa0 + h[0] kappa0) b(x_t) = check * b(x_t)
        gate[F] = 1.0
    ones, zeros = torch.ones(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
    ln_f = torch.zeros(d, dtype=torch.float64)
    ln_f[R] = 1.0
    state = {
        "backbone.embeddings.word_embeddings.weight": emb,
        "lm_head.weight": emb.clone(),
        layer0 + "projection.weight": torch.zeros(d, d, dtype=torch.float64),
        layer0 + "projection.bias": gate,
        layer0 + "conv.conv.weight": taps.flip(-1).unsqueeze(1).contiguous(),  # Conv1d layout: lag s at k-1-s
        layer0 + "conv.conv.bias": zeros.clone(),
        "backbone.ln_f.weight": ln_f,
        "backbone.ln_f.bias": zeros.clone(),
    }
    for i in (0, 1):
        state[f"backbone.layers.{i}.norm1.weight"] = ones.clone()
        state[f"backbone.layers.{i}.norm1.bias"] = zeros.clone()
        state[f"backbone.layers.{i}.norm2.weight"] = zeros.clone()  # muted: the Identity state mixer's path
        state[f"backbone.layers.{i}.norm2.bias"] = zeros.clone()
    return state


def check_sizes(vocab_size: int, seq_len: int, num_kv_pairs: int, d_model: int, num_blocks: int = 3) -> int:
    """Validate the sizes up front (``num_blocks`` code blocks of width ``m`` must fit ``d_model``); return ``m``."""
    for name, value in (("vocab_size", vocab_size), ("seq_len", seq_len), ("num_kv_pairs", num_kv_pairs)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}={value!r}: must be an int >= 1")
    if isinstance(d_model, bool) or not isinstance(d_model, (int, np.integer)) or d_model < 1:
        raise ValueError(f"d_model={d_model!r}: must be an int >= 1")
    if seq_len < 2 or seq_len % 2:
        raise ValueError(f"seq_len={seq_len}: must be even and >= 2 (the reference generator's rule)")
    if vocab_size <= seq_len:
        raise ValueError(f"vocab_size={vocab_size}: must be > seq_len={seq_len} (the reference generator's rule)")
    if 4 * num_kv_pairs > seq_len:
        raise ValueError(f"num_kv_pairs={num_kv_pairs}: needs 4*num_kv_pairs <= seq_len={seq_len}")
    m = balanced_code_width(vocab_size)
    if num_blocks * m > d_model:
        raise ValueError(
            f"d_model={d_model}: the lookup needs {num_blocks}m = {num_blocks * m} channels (balanced codes of width "
            f"m = {m} for vocab_size={vocab_size}); use d_model >= {num_blocks * m}"
        )
    return m


def finish(config: dict, state: dict[str, torch.Tensor], info: dict) -> ReferenceExport:
    """Load the state into our reference-layout model (checked, strict) and return it in the reference's key order."""
    model = load_reference_model(config, state)
    return ReferenceExport(config=config, state=reference_state_dict(model), info=info)
