"""Whole constructions as reference-format checkpoints: ``ModelConfig`` kwargs + a ``state_dict`` under its exact keys.

``export_reference(name, vocab_size=c, seq_len=N, num_kv_pairs=D, d_model=None, window=None)`` ->
:class:`ReferenceExport` (``config``: the reference ``ModelConfig`` keyword arguments with the nested mixer configs;
``state``: ``{reference key: float64 tensor}``; ``info``: the layer mapping and the knobs). The model is the [B]
Fig. 2 hybrid: 2 layers, layer 0 a ``BaseConv`` with a short convolution (kernel 3), layer 1 the lookup mixer,
Identity state mixer, LayerNorms, LM head tied to the embeddings, no positional embeddings, all dropouts 0.

Glossary (theory.md §4.2, §4.5; :mod:`mqarkit.constructions._balanced_codes`): ``c, N, D`` as everywhere; ``d`` =
``d_model``; ``m`` the balanced-code width, ``b(u)`` the code of token ``u`` (mean 0, ``|b|^2 = m``, distinct codes
score ``<= m - 4``); ``delta = 4/m`` the unit-code score gap; ``beta`` the lookup's inverse temperature in unit codes;
``eps_LN = 1e-5``; ``kappa0, kappa1`` the scales of the two ``norm1`` LayerNorms on the streams below.

**Stream.** Channel blocks ``T = [0, m)``, ``P = [m, 2m)``, ``R = [2m, 3m)``, the rest zero (so ``3m <= d``).
Embedding (and tied head): ``E[u] = [b(u), b(u), b(u), 0]``.

**Layer 0** (``norm1`` weight 1, bias 0; ``h0 = E[x]`` has mean 0 and mean square ``3m/d``, so
``a = kappa0 h0`` with ``kappa0 = (3m/d + eps_LN)^(-1/2)``). The reference BaseConv computes
``y = conv(a) * (a W + g) + a``; we set ``W = 0``, conv bias 0, and per block:

- ``T``: gate ``g = 0``, so ``y_T = a_T`` and the residual is ``r1_T = (1 + kappa0) b(x_t)``;
- ``P``: ``g = 1``, taps ``h[1] = 1``, ``h[0] = -(1 + kappa0)/kappa0``: ``y_P = kappa0 b(x_{t-1}) - b(x_t)``, so
  ``r1_P = kappa0 b(x_{t-1})`` (``0`` at ``t = 0``: the conv zero-pads) -- the previous-token shift, with the
  reference's ``+ u`` and the residual cancelled;
- ``R``: ``g = 1``, ``h[0] = -(1 + kappa0)/kappa0``: ``y_R = -b(x_t)``, ``r1_R = 0`` (kept free for the readout).

``norm2`` of both blocks has weight 0 and bias 0: with the Identity state mixer its output is added to the residual
stream, and zero gains mute that path.

**Layer 1** (``norm1`` weight 1, bias 0): for ``t >= 1`` the stream ``r1`` has mean 0 and mean square
``((1 + kappa0)^2 + kappa0^2) m/d``, so ``a = kappa1 r1``; at ``t = 0`` (``r1_P = 0``) the scale is
``kappa1' > kappa1``, ``rho = kappa1'/kappa1 < sqrt(2)``. One softmax head of width ``d``, logits ``q.k/sqrt(d)``:
``q = lambda_q a_T``, ``k = a_P``, ``v = a_T / (kappa1 (1 + kappa0))`` (head channels ``[0, m)``), ``out_proj``
writes head channel ``i`` to ``R_i``; every bias 0. With ``lambda_q = beta sqrt(d) / (m kappa1^2 kappa0 (1 + kappa0))``
the logit of key ``s`` for query ``t`` is ``beta <b(x_t), b(x_{s-1})>/m`` (0 for ``s = 0``), and ``v_s = b(x_s)``
(``rho b(x_0)`` at ``s = 0``). ``ln_f``: weight 1 on ``R``, 0 elsewhere, bias 0; the stream's mean is 0, so the
logits are ``<b(u), o_t>/sigma_t`` with ``o_t = sum_s p_s v_s`` and ``sigma_t > 0``: the prediction is
``argmax_u <b(u), o_t>`` over the whole vocabulary.

**Theorem (causal mask).** Let ``t`` be an unambiguous query (no filler equal to its key ``k`` before ``t``) of key
``k`` with value ``v``. Its visible matches ``{s <= t : x_{s-1} = k}`` are exactly ``{2j + 1}``, the value position
of its pair: ``k`` occurs before ``t`` only in the key-value block (queries are distinct keys, fillers are not
``k``), and ``x_{t-1}`` (a filler, or the last value when ``t = 2D``) is not ``k``. So the causal mask, under which a
token sees itself, reads the same single match as the strict one; the at most ``N - 1`` other visible positions
score ``<= 1 - delta`` (position 0 scores 0). If the softmax weight off the match is ``eps < 1/(1 + rho)``, then for
every ``u != v`` (``h = ham(b(u), b(v)) >= 2``):
``<o_t, b(v) - b(u)> >= (1 - eps) 2h - eps rho 2h > 0`` (every entry of a code is ``+-1``, so
``|<b(w), b(v) - b(u)>| <= 2h``), and the prediction is ``v``. With ``K <= N - 1`` non-matching visible keys,
``eps <= K e^{-beta delta}``, so ``beta >= beta* = ln(4(N - 1))/delta`` gives ``eps <= 1/4 < 1/(1 + sqrt 2)``.
(With the strict mask ``j < i`` the count is ``N - 2``, as in ``attention_signcode``.)  QED.

**The exported inverse temperature** is ``beta*`` at ``N = c``: the reference generator asserts ``c > N``, so one
checkpoint serves every sequence length its data can have for this vocabulary (the reference's short convolution
and attention do not depend on ``l_max``), not only the ``seq_len`` it was exported for.

**Sliding window** (``window=w``; the reference ``SlidingAttn`` with ``block_size = w - 1`` admits the ``w`` keys
``t - w < s <= t``, its scale is ``1/sqrt(d)``, one head). The lookup above answers a query whose value position
``2j + 1`` lies in the window (``K <= w - 1`` competitors). A query whose pair lies outside the window has no visible
match, and the lookup alone outputs a mixture of other tokens' codes whose argmax can be ``v`` by coincidence (the
first version of this export did so on 8 of about 520,000 such queries). The export therefore adds a **no-match
path** that answers every such query with the reserved token ``nu = 0``: the reference generator draws values from
``[c/2, c)``, so ``0`` is never a correct answer. With it, *the correctly answered unambiguous queries are exactly
those whose pair lies in the window* (U8's recall set), proved below.

Weights (``Lambda`` = ``NO_MATCH_CHECK_SCALE``, ``eps`` = ``NO_MATCH_EPS``; everything else as above):

- a fourth block ``F = [3m, 4m)``: ``E[u]_F = b(u)`` and layer 0 scales it to ``r1_F = Lambda b(x_t)``
  (:mod:`mqarkit.gpu.reference_stream`; ``kappa0``, ``kappa1``, ``rho`` count it);
- the head's value channels ``[m, 2m)`` carry ``a_P / (kappa1 kappa0) = b(x_{s-1})`` (``0`` at ``s = 0``), and
  ``out_proj`` writes them to ``F`` with weight ``-Lambda``: after layer 1, ``r_F = Lambda (b(k) - o_F)`` with
  ``o_F = sum_s p_s b(x_{s-1})``: the *mismatch* between the query's key and the keys the softmax read;
- ``beta = ln(max(w - 1, 1)/eps)/delta``, so the softmax weight off a visible match is at most ``eps``;
- ``ln_f`` bias ``C b(nu)`` on ``R`` (weight 1 on ``R``, 0 elsewhere, as before): token ``u``'s logit is
  ``<b(u), o_R>/sigma + C <b(u), b(nu)>`` with ``sigma = (|r|^2/d + eps_LN)^(1/2)`` (the stream's mean is 0).

At a query (``t >= 2``), ``|r|^2 = B0 + |o_R|^2 + Lambda^2 |b(k) - o_F|^2`` with ``B0 = ((1 + kappa0)^2 +
kappa0^2) m`` (blocks ``T``, ``P``). For ``u != w`` write ``h(u, w)`` for the Hamming distance of the codes, so
``<b(u) - b(w), x> <= 2 h(u, w) max_i |x_i|`` and ``m - <b(u), b(w)> = 2 h(u, w)``.

*Match visible* (off-match weight ``eps' <= eps``): ``o_R = (1 - eps') b(v) + ...`` with entries of the rest
``<= rho``, ``|o_R|^2 <= rho^2 m``, and ``|b(k) - o_F| <= 2 eps sqrt(m)``, so
``sigma^2 <= S_match = (B0 + rho^2 m + 4 eps^2 m Lambda^2)/d + eps_LN``. For every ``u != v`` (``nu`` included)
``L_v - L_u >= 2 h(u, v) ((1 - eps (1 + rho))/sigma - C) > 0`` if ``C < C_hi = (1 - eps (1 + rho))/sqrt(S_match)``.

*No match visible* (every visible ``s`` has ``x_{s-1} != k``, or ``s = 0`` with an empty ``F`` value):
``<b(k), o_F> <= m - 4``, so ``|b(k) - o_F| >= <b(k), b(k) - o_F>/sqrt(m) >= 4/sqrt(m)`` and
``sigma^2 >= S_none = (B0 + 16 Lambda^2/m)/d + eps_LN``. Entries of ``o_R`` are ``<= rho``, so for every
``u != nu``: ``L_nu - L_u >= 2 h(u, nu) (C - rho/sigma) > 0`` if ``C > C_lo = rho/sqrt(S_none)``. The prediction is
``nu`` (never ``v``).

The export takes ``C = sqrt(C_lo C_hi)`` and refuses sizes where ``C_lo >= C_hi`` (:func:`no_match_bias`); at
``c = 8192``, ``d = 128`` (``m = 16``), ``Lambda = 64``, ``eps = 1/64``: ``C_lo = 0.174``, ``C = 0.365``,
``C_hi = 0.765``, a factor 2.1 either side, for every window. The window's ``beta`` does not depend on ``N``: one
checkpoint serves every ``N``. QED.

Width: ``3m <= d`` (``4m`` for the sliding window): at ``c = 8192``, ``m = 16``, so ``d = 64`` (the paper's attention
width) suffices for the attention hybrid and ``d = 128`` for the sliding window.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mqarkit.constructions._balanced_codes import balanced_codes
from mqarkit.gpu.reference_export_based import export_based
from mqarkit.gpu.reference_model import BASECONV, MHA, SLIDING
from mqarkit.gpu.reference_stream import (
    LN_EPS,
    ReferenceExport,
    blocks,
    check_block,
    check_sizes,
    finish,
    model_config,
    shared_weights,
    stream_scales,
)

DEFAULT_D_MODEL = {"attention_signcode": 64, "sliding_window": 128, "based_taylor": 64}
EXPORTABLE = tuple(DEFAULT_D_MODEL)
NOT_EXPORTABLE = {
    "attention_onehot": (
        "U1's lookup is softmax-free with one-hot codes (width 3c); the reference's MHA is softmax and one-hot codes "
        "of c tokens do not fit d_model: export attention_signcode, the same lookup with softmax over sign codes"
    ),
    "baseconv_data_independent": (
        "the construction needs position-dependent gates (theory.md erratum 6) and width growing with N; the "
        "reference BaseConv computes conv(u) * (u W + b) + u with one bias per channel, and each block adds its "
        "input back through a residual behind a LayerNorm, so neither the position gates nor the exact products fit"
    ),
    "baseconv_input_dependent": (
        "its lags are chosen per example (model_for(tokens)): one checkpoint cannot hold them; the reference BaseConv "
        "has no position-dependent biases either"
    ),
    "baseconv_linear_attention": "a BaseConv stack (U7): no position-dependent biases in the reference BaseConv",
    "h3_gated": "H3 is not one of the mixers this export writes (reference H3 checkpoints are not implemented here)",
}


NO_MATCH_TOKEN = 0  # the sliding window's answer to a query without a visible match: never a value ([c/2, c))
NO_MATCH_CHECK_SCALE = 64.0  # Lambda: the scale of block F (module docstring)
NO_MATCH_EPS = 1 / 64  # eps: the softmax weight off a visible match is at most this


def sufficient_beta(seq_len: int, code_width: int) -> float:
    """``beta* = ln(4 (N - 1)) / delta`` with ``delta = 4/m`` (the causal mask's count; at least ``ln 4 / delta``)."""
    return math.log(4 * max(seq_len - 1, 1)) * code_width / 4


def window_beta(window: int, code_width: int, eps: float = NO_MATCH_EPS) -> float:
    """``ln(max(w - 1, 1)/eps) / delta``: the softmax weight off a visible match is at most ``eps``."""
    return math.log(max(window - 1, 1) / eps) * code_width / 4


def no_match_bias(
    code_width: int, d_model: int, *, check: float = NO_MATCH_CHECK_SCALE, eps: float = NO_MATCH_EPS
) -> dict[str, float]:
    """The interval ``(C_lo, C_hi)`` of the ``ln_f`` bias for which the no-match path is exact, and ``C`` its
    geometric mean (module docstring, "Sliding window"); ``ValueError`` when the interval is empty."""
    m, d = code_width, d_model
    kappa0, _, rho = stream_scales(m, d, check)
    base = ((1 + kappa0) ** 2 + kappa0**2) * m
    s_match = (base + rho**2 * m + 4 * eps**2 * m * check**2) / d + LN_EPS
    s_none = (base + 16 * check**2 / m) / d + LN_EPS
    c_hi = (1 - eps * (1 + rho)) / math.sqrt(s_match)
    c_lo = rho / math.sqrt(s_none)
    if not (1 - eps * (1 + rho) > 0 and c_lo < c_hi):
        raise ValueError(
            f"d_model={d_model}, code width {m}: the no-match bias interval ({c_lo:.4g}, {c_hi:.4g}) is empty"
        )
    return {"C_lo": c_lo, "C": math.sqrt(c_lo * c_hi), "C_hi": c_hi, "S_match": s_match, "S_none": s_none}


def _attention_weights(m: int, d: int, beta: float, layer1: str, check: float = 0.0) -> dict[str, torch.Tensor]:
    """Layer 1's fused ``Wqkv (3d, d)`` and ``out_proj`` (module docstring; ``check > 0``: the no-match path's
    ``F`` values and their write-back with weight ``-check``)."""
    T, P, R = blocks(m)
    kappa0, kappa1, _ = stream_scales(m, d, check)
    lam_q = beta * math.sqrt(d) / (m * kappa1**2 * kappa0 * (1 + kappa0))
    wqkv = torch.zeros(3 * d, d, dtype=torch.float64)
    eye = torch.eye(m, dtype=torch.float64)
    wqkv[0:m, T] = lam_q * eye  # q = lambda_q a_T
    wqkv[d : d + m, P] = eye  # k = a_P
    wqkv[2 * d : 2 * d + m, T] = eye / (kappa1 * (1 + kappa0))  # v = b(x_s)
    out = torch.zeros(d, d, dtype=torch.float64)
    out[R, 0:m] = eye  # head channel i -> R_i
    if check:
        wqkv[2 * d + m : 2 * d + 2 * m, P] = eye / (kappa1 * kappa0)  # v_F = b(x_{s-1}) (0 at s = 0)
        out[check_block(m), m : 2 * m] = -check * eye  # r_F = Lambda (b(k) - o_F)
    return {
        layer1 + "Wqkv.weight": wqkv,
        layer1 + "Wqkv.bias": torch.zeros(3 * d, dtype=torch.float64),
        layer1 + "out_proj.weight": out,
        layer1 + "out_proj.bias": torch.zeros(d, dtype=torch.float64),
    }


def export_attention(
    *, vocab_size: int, seq_len: int, num_kv_pairs: int, d_model: int = 64, window: int | None = None
) -> ReferenceExport:
    """The attention hybrid (``window=None``: ``MHA``) or the sliding-window hybrid (``SlidingAttn``, with the
    no-match path)."""
    if window is not None and (isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1):
        raise ValueError(f"window={window!r}: must be an int >= 1")
    m = check_sizes(vocab_size, seq_len, num_kv_pairs, d_model, num_blocks=3 if window is None else 4)
    codes = balanced_codes(vocab_size, m)
    layer0, layer1 = "backbone.layers.0.sequence_mixer.mixer.", "backbone.layers.1.sequence_mixer.mixer."
    if window is None:
        mixer = {"name": MHA, "kwargs": {"dropout": 0.0, "num_heads": 1}}
        name, construction, check = "attention", "attention_signcode", 0.0
        beta = sufficient_beta(vocab_size, m)  # every N < c (module docstring)
    else:
        mixer = {"name": SLIDING, "kwargs": {"block_size": int(window) - 1, "dropout": 0.0}}
        name, construction, check = "sliding-window-attention", "sliding_window", NO_MATCH_CHECK_SCALE
        beta = window_beta(int(window), m)  # every N
        bias = no_match_bias(m, d_model)
    config = model_config(mixer, d_model=d_model, vocab_size=vocab_size, seq_len=seq_len, name=name)
    state = {**shared_weights(codes, d_model, layer0, layer1, check)}
    state.update(_attention_weights(m, d_model, beta, layer1, check))
    kappa0, kappa1, rho = stream_scales(m, d_model, check)
    info = {
        "construction": construction,
        "claim": "U8" if window is not None else "U2",
        "d_model": d_model,
        "code_width": m,
        "channels_used": (3 if window is None else 4) * m,
        "beta": beta,
        "score_gap": 4 / m,
        "window": window,
        "scales": {"kappa0": kappa0, "kappa1": kappa1, "rho": rho},
        "layers": [
            {
                "layer": 0,
                "mixer": BASECONV,
                "role": "previous-token shift into P = [m, 2m); R = [2m, 3m) cleared; T = [0, m) keeps b(x_t)",
            },
            {
                "layer": 1,
                "mixer": mixer["name"],
                "role": "lookup: q = b(x_t) (T), k = b(x_{s-1}) (P), v = b(x_s) (T) -> R; beta = ln(4(c-1)) m/4",
            },
            {"readout": "ln_f keeps R; tied head: logits_u = <b(u), R>/sigma"},
        ],
    }
    if window is not None:
        R = blocks(m)[2]
        ln_f_bias = state["backbone.ln_f.bias"].clone()
        ln_f_bias[R] = bias["C"] * torch.from_numpy(codes[NO_MATCH_TOKEN].astype(np.float64))
        state["backbone.ln_f.bias"] = ln_f_bias
        info["no_match"] = {
            "token": NO_MATCH_TOKEN,
            "check_scale": NO_MATCH_CHECK_SCALE,
            "eps": NO_MATCH_EPS,
            "bias_interval": [bias["C_lo"], bias["C_hi"]],
            "bias": bias["C"],
        }
        info["layers"] = [
            {
                "layer": 0,
                "mixer": BASECONV,
                "role": "previous-token shift into P = [m, 2m); R = [2m, 3m) cleared; T = [0, m) keeps b(x_t); "
                f"F = [3m, 4m) scaled to {NO_MATCH_CHECK_SCALE:g} b(x_t)",
            },
            {
                "layer": 1,
                "mixer": mixer["name"],
                "role": "lookup: q = b(x_t) (T), k = b(x_{s-1}) (P), v = (b(x_s), b(x_{s-1})) -> (R, -Lambda F); "
                "beta = ln((w-1)/eps) m/4",
            },
            {
                "readout": f"ln_f keeps R, bias C b({NO_MATCH_TOKEN}); tied head: logits_u = <b(u), R>/sigma + "
                f"C <b(u), b({NO_MATCH_TOKEN})>; F only enlarges sigma when no match is visible"
            },
        ]
    return finish(config, state, info)


def export_reference(
    name: str,
    *,
    vocab_size: int,
    seq_len: int,
    num_kv_pairs: int,
    d_model: int | None = None,
    window: int | None = None,
    feature_dim: int | None = None,
) -> ReferenceExport:
    """Export construction ``name`` in the reference layout (``ValueError`` naming why when it cannot be done)."""
    if name in NOT_EXPORTABLE:
        raise ValueError(f"construction={name!r}: cannot be exported to the reference layout: {NOT_EXPORTABLE[name]}")
    if name not in EXPORTABLE:
        raise ValueError(f"construction={name!r}: unknown to the reference export; exportable: {', '.join(EXPORTABLE)}")
    d = DEFAULT_D_MODEL[name] if d_model is None else d_model
    if name != "sliding_window" and window is not None:
        raise ValueError(f"window={window}: only the sliding_window construction takes a window")
    if name != "based_taylor" and feature_dim is not None:
        raise ValueError(f"feature_dim={feature_dim}: only the based_taylor construction takes a feature_dim")
    if name == "attention_signcode":
        return export_attention(vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs, d_model=d)
    if name == "sliding_window":
        if window is None:
            raise ValueError("window: the sliding_window export needs window=w (an int >= 1)")
        return export_attention(
            vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs, d_model=d, window=window
        )
    return export_based(
        vocab_size=vocab_size, seq_len=seq_len, num_kv_pairs=num_kv_pairs, d_model=d, feature_dim=feature_dim
    )


__all__ = [
    "EXPORTABLE",
    "NOT_EXPORTABLE",
    "NO_MATCH_TOKEN",
    "ReferenceExport",
    "export_attention",
    "export_reference",
    "no_match_bias",
]
