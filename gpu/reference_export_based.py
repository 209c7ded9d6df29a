"""The Based hybrid as a reference-format checkpoint: the attention export's stream with a Taylor linear attention.

Glossary: as :mod:`mqarkit.gpu.reference_export` (``m``, ``b(u)``, blocks ``T, P, R``, ``kappa0``, ``kappa1``;
shared parts in :mod:`mqarkit.gpu.reference_stream`);
``d'`` = ``feature_dim`` (the reference ``Based``'s projected q/k width, 16 in the paper); ``sigma`` the kernel's
argument ``q.k/sqrt(d')``; ``Kern(sigma) = 1 + sigma + sigma^2/2 >= 1/2``; ``alpha`` the match score
(``sigma = alpha <b(x_t), b(x_{s-1})>/m``); ``b0 = b(0)`` the code of the zero filler.

Weights: layer 0, the LayerNorms, the embedding and the readout are the attention export's. Layer 1 is the
reference ``Based`` (one head, head width ``d``, bias-free projections, normalised): ``q = lambda a_T`` and
``k = a_P`` in feature channels ``[0, m)``, with ``lambda = alpha sqrt(d') / (m kappa1^2 kappa0 (1 + kappa0))``;
``v = Pi b(x_s)`` with ``Pi = I - b0 b0^T / m`` (the zero filler's direction removed, so the ``N - 2D`` filler
positions of zero-filler data add nothing to the numerator), written to ``R``. The output is
``o_t = sum_s Kern_s Pi b(x_s) / (sum_s Kern_s + eps)``: the denominator is a positive scalar, so the prediction is
``argmax_u <b(u), sum_s Kern_s Pi b(x_s)>``.

Why recall is not exact here. The kernel never vanishes (``Kern >= 1/2``) and the state is ``F x d`` with
``F = 1 + d' + d'^2`` (the reference materialises the full map): every visible non-matching pair adds
``Kern(sigma_s) Pi b(x_s)`` to the numerator, a sum that grows like ``sqrt(#pairs)`` against the single match
``Kern(alpha)``. With ``d' = 16 = m`` there is no room for the one-hot values that make ``based_taylor``'s regime A
exact (it needs ``d_v = c/2`` value channels and ``d' = ceil(log2 c)`` key channels), so recall follows a capacity
law like ``based_taylor``'s regime B: the report gives the measured accuracy next to
:func:`mqarkit.constructions.based_taylor.predicted_recall`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mqarkit.constructions._balanced_codes import balanced_codes
from mqarkit.gpu.reference_model import BASECONV, BASED
from mqarkit.gpu.reference_stream import (
    ReferenceExport,
    blocks,
    check_sizes,
    finish,
    model_config,
    shared_weights,
    stream_scales,
)

DEFAULT_FEATURE_DIM = 16  # the paper's Based hybrid (feature_dim 16)
DEFAULT_ALPHA = 32.0  # the match score: recall saturates from about 32 on (docs/results/reference_exports.md)


def export_based(
    *,
    vocab_size: int,
    seq_len: int,
    num_kv_pairs: int,
    d_model: int = 64,
    feature_dim: int | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> ReferenceExport:
    """The Based hybrid (module docstring); ``ValueError`` when the codes do not fit ``feature_dim`` or ``d_model``."""
    m = check_sizes(vocab_size, seq_len, num_kv_pairs, d_model)
    f = DEFAULT_FEATURE_DIM if feature_dim is None else feature_dim
    if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or f < m:
        raise ValueError(
            f"feature_dim={f!r}: the keys are balanced codes of width m = {m} for vocab_size={vocab_size}; "
            f"needs an int feature_dim >= {m}"
        )
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha={alpha!r}: must be a finite number > 0")
    mixer = {
        "name": BASED,
        "kwargs": {
            "l_max": seq_len,
            "feature_dim": int(f),
            "num_key_value_heads": 1,
            "num_heads": 1,
            "feature_name": "taylor_exp",
            "train_view": "quadratic",
        },
    }
    config = model_config(mixer, d_model=d_model, vocab_size=vocab_size, seq_len=seq_len, name="based")
    layer0, layer1 = "backbone.layers.0.sequence_mixer.mixer.", "backbone.layers.1.sequence_mixer.mixer."
    codes = balanced_codes(vocab_size, m)
    state = shared_weights(codes, d_model, layer0, layer1)
    T, P, R = blocks(m)
    kappa0, kappa1, _ = stream_scales(m, d_model)
    lam = alpha * math.sqrt(f) / (m * kappa1**2 * kappa0 * (1 + kappa0))
    eye = torch.eye(m, dtype=torch.float64)
    b0 = torch.from_numpy(codes[0].astype(np.float64))
    proj = eye - torch.outer(b0, b0) / m  # Pi: removes the zero filler's direction from the values
    wq = torch.zeros(f, d_model, dtype=torch.float64)
    wk = torch.zeros(f, d_model, dtype=torch.float64)
    wv = torch.zeros(d_model, d_model, dtype=torch.float64)
    wo = torch.zeros(d_model, d_model, dtype=torch.float64)
    wq[0:m, T] = lam * eye
    wk[0:m, P] = eye
    wv[0:m, T] = proj / (kappa1 * (1 + kappa0))  # v = Pi b(x_s)
    wo[R, 0:m] = eye
    state.update(
        {
            layer1 + "proj_q.weight": wq,
            layer1 + "proj_k.weight": wk,
            layer1 + "proj_v.weight": wv,
            layer1 + "proj_o.weight": wo,
        }
    )
    features = 1 + f + f * f
    info = {
        "construction": "based_taylor",
        "claim": "U9",
        "d_model": d_model,
        "code_width": m,
        "channels_used": 3 * m,
        "feature_dim": int(f),
        "alpha": float(alpha),
        "exact": False,
        "why_not_exact": (
            "the Taylor kernel never vanishes (>= 1/2) and d' = feature_dim leaves no room for based_taylor's "
            f"one-hot values (regime A needs {vocab_size - vocab_size // 2} value channels): recall follows a "
            "capacity law"
        ),
        "state_numbers_materialised": features * d_model + features,
        "layers": [
            {"layer": 0, "mixer": BASECONV, "role": "previous-token shift (as the attention export)"},
            {"layer": 1, "mixer": BASED, "role": "Taylor linear attention: q = b(x_t), k = b(x_{s-1}), v = Pi b(x_s)"},
            {"readout": "ln_f keeps R; tied head"},
        ],
    }
    return finish(config, state, info)
