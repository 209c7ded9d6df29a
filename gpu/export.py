"""Export a Construction's IR layers, one by one, as ``state_dict``s of zoology's mixer modules, where they fit.

Whole models: :mod:`mqarkit.gpu.reference_export` (``mqarkit export zoology``) writes complete reference
``LanguageModel`` checkpoints (``ModelConfig`` kwargs + ``state_dict`` under the exact keys) that solve MQAR in the
reference's own layout (LayerNorms, residuals, the causal mask, per-channel BaseConv biases, tied head): the
attention hybrid of [B] Fig. 2 at ``d_model = 64`` recalls every unambiguous query up to ``(N, D) = (1024, 256)``.
They are built for that layout (balanced sign codes that LayerNorm leaves alone, zero gains on the unwanted paths,
the softmax lookup of U2 under the causal mask, which is as good as the strict one on unambiguous queries), not
translated from the IR ops below. This module answers the narrower question of which *IR op* maps onto which
reference *mixer module* as it is.

``export_state_dict(construction, layout="zoology") -> {"layers.<i>.<key>": tensor}`` writes each sequence-mixing
layer of the construction's IR model in the layout of zoology's reference module for its family, or raises
``ValueError`` naming the first layer that does not fit and why; :func:`fit_report` lists every layer's verdict
without raising, and :func:`export_layer` exports one IR op. Each export is checked by loading it into our
zoology-semantics module (``BaseConv(semantics="zoology")``, ``SoftmaxAttention``, ``BasedLinearAttention``: the
golden contracts of :mod:`mqarkit.gpu.golden` prove those equal zoology's modules) and comparing with the IR op
(tests). Only mixers are exported: the residual stream glue of the IR (named blocks, reads/writes) has no counterpart
in zoology, whose blocks are ``x + mixer(LayerNorm(x))`` followed by an MLP.

Square widths: zoology's mixers map ``d -> d``; an op is written in a ``D = max(widths)`` module with its weights in
the leading corner (zeros elsewhere), input zero-padded, output truncated to the op's ``out_width``.

================================  ====================  =========================================================
IR op                             zoology module        fits?
================================  ====================  =========================================================
CausalConv ``h`` (k taps)         ``BaseConv`` short    yes: ``W = 0``, ``b = 1`` so the gate is 1, conv taps
                                  conv (``kernel=k``)   reversed (Conv1d layout), lag-0 tap ``h[0] - 1`` to
                                                        cancel zoology's ``+ u`` residual, ``conv_bias = 0``
BaseConv (paper)                  ``BaseConv``          no: zoology computes ``conv(u) * (uW + b) + u``: the
                                                        ``+ u`` cannot be cancelled inside a product, and its
                                                        biases are per channel, not position-dependent
SoftmaxAttention, mask causal     ``MHA`` (1 head)      yes: ``Wqkv = [beta sqrt(D) wq.T; wk.T; wv.T]``, bias 0,
                                                        ``out_proj = wo.T`` (or ``I``), bias 0
SoftmaxAttention, strict/window   ``MHA``               no: zoology's MHA mask is causal (``j <= i``)
SoftmaxAttention + positional     ``MHA``               no: MHA has no additive logit bias
UnnormalisedAttention             (none)                no: zoology has no softmax-free attention
LinearAttention, Taylor, norm.    ``Based``             yes: ``proj_q = a wq.T`` (``a = sqrt(dk)`` if the IR map
                                                        is unscaled), ``proj_k/v/o``; eps must be zoology's 1e-12
LinearAttention, unnormalised     ``Based``             no: zoology's Based divides by ``phi(q).z``
Linear (embed/unembed)            (none)                no: not a sequence mixer (zoology's embeddings are
                                                        lookup tables, its MLPs come with LayerNorm)
================================  ====================  =========================================================

Consequence for the registered constructions, op by op: the shift layers (``CausalConv``) of the attention family
and Based fit; their IR lookups do not (strict mask, softmax-free or unnormalised by design: theory.md erratum 2 and
U9), and the BaseConv stacks do not (extra residual, position-dependent gates). ``fit_report`` states this per
layer. That is a statement about these IR ops, not about the reference layout: the same lookups rebuilt for it
(:mod:`mqarkit.gpu.reference_export`) fit as whole models.
"""

from __future__ import annotations

import math

import torch

from mqarkit.gpu.load_layers import fused_qkv, out_matrix
from mqarkit.gpu.load_mapping import embed_block, ir_array
from mqarkit.polynomials import (
    BaseConv,
    CausalConv,
    Linear,
    LinearAttention,
    SoftmaxAttention,
    TaylorMap,
    UnnormalisedAttention,
)

LAYOUTS = ("zoology",)
ZOOLOGY_BASED_EPS = 1e-12


def misfit(op) -> str | None:
    """Why ``op`` does not fit zoology's layouts, or ``None`` when it does."""
    if isinstance(op, CausalConv):
        return None
    if isinstance(op, BaseConv):
        return (
            "zoology's BaseConv computes conv(u) * (uW + b) + u: the extra residual + u cannot be cancelled inside the "
            "product, and its biases are per channel, not position-dependent"
        )
    if isinstance(op, SoftmaxAttention):
        if op.mask != "causal":
            return f"zoology's MHA mask is causal (j <= i); this attention's mask is {op.mask!r}"
        if op.positional_bias is not None:
            return "zoology's MHA has no additive positional logit bias"
        return None
    if isinstance(op, UnnormalisedAttention):
        return "zoology has no softmax-free (unnormalised) attention module"
    if isinstance(op, LinearAttention):
        if not isinstance(op.feature_map, TaylorMap):
            return f"zoology's Based uses the Taylor map, not {type(op.feature_map).__name__}"
        if not op.normalise:
            return "zoology's Based normalises (divides by phi(q).z); this linear attention is unnormalised"
        if float(op.eps) != ZOOLOGY_BASED_EPS:
            return f"zoology's Based adds eps={ZOOLOGY_BASED_EPS}; this op has eps={float(op.eps)}"
        return None
    if isinstance(op, Linear):
        return "a per-position Linear is not a sequence mixer (zoology's embeddings and MLPs are not this layout)"
    return f"op {type(op).__name__} has no zoology layout"


def export_width(op) -> int:
    """``D``: the square width of the zoology module the op is written into."""
    if isinstance(op, CausalConv):
        return op.in_width
    if isinstance(op, LinearAttention):
        return max(op.in_width, op.value_width, op.out_width)
    return max(op.in_width, op.key_width, op.value_width, op.out_width)


def export_layer(op, layout: str = "zoology") -> dict[str, torch.Tensor]:
    """One IR op -> the ``state_dict`` of zoology's module for it (float64). ``ValueError`` when it does not fit."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}: must be one of {LAYOUTS}")
    why = misfit(op)
    if why is not None:
        raise ValueError(f"{op.label}: does not fit layout {layout!r}: {why}")
    width = export_width(op)
    if isinstance(op, CausalConv):
        taps = ir_array(op.taps).T.clone()  # (d, k) lag-ordered
        taps[:, 0] -= 1.0  # zoology adds u after the gate: subtract it from the lag-0 tap
        return {
            "projection.weight": torch.zeros(width, width, dtype=torch.float64),  # W = 0 ...
            "projection.bias": torch.ones(width, dtype=torch.float64),  # ... b = 1: the gate is 1
            "conv.conv.weight": taps.flip(-1).unsqueeze(1).contiguous(),  # Conv1d layout: lag s at k-1-s
            "conv.conv.bias": torch.zeros(width, dtype=torch.float64),
        }
    if isinstance(op, SoftmaxAttention):
        return {
            "Wqkv.weight": fused_qkv(op, width, float(op.beta) * math.sqrt(width)),  # logits beta q.k
            "Wqkv.bias": torch.zeros(3 * width, dtype=torch.float64),
            "out_proj.weight": out_matrix(op, width)[0],
            "out_proj.bias": torch.zeros(width, dtype=torch.float64),
        }
    dk = op.key_width
    alpha = 1.0 if op.feature_map.scale else math.sqrt(dk)  # zoology's kernel uses q.k / sqrt(dk)
    return {
        "proj_q.weight": embed_block((dk, width), alpha * ir_array(op.wq).T),
        "proj_k.weight": embed_block((dk, width), ir_array(op.wk).T),
        "proj_v.weight": embed_block((width, width), ir_array(op.wv).T),
        "proj_o.weight": out_matrix(op, width)[0],
    }


def mixing_layers(construction) -> list[tuple[int, object]]:
    """``(index, op)`` of every layer of the construction's IR model."""
    from mqarkit.constructions import check_construction

    return list(enumerate(layer.op for layer in check_construction(construction).model.layers))


def fit_report(construction, layout: str = "zoology") -> list[tuple[int, str, str | None]]:
    """``(layer index, op label, reason it does not fit or None)`` for every layer."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}: must be one of {LAYOUTS}")
    return [(i, op.label, misfit(op)) for i, op in mixing_layers(construction)]


def export_state_dict(construction, layout: str = "zoology") -> dict[str, torch.Tensor]:
    """Every layer in zoology's layouts, keys ``layers.<i>.<zoology key>``; ``ValueError`` naming the first layer
    that does not fit (see :func:`fit_report` for all of them)."""
    out: dict[str, torch.Tensor] = {}
    for i, label, why in fit_report(construction, layout):
        if why is not None:
            raise ValueError(f"{construction.name} layer {i} ({label}): does not fit layout {layout!r}: {why}")
    for i, op in mixing_layers(construction):
        out.update({f"layers.{i}.{k}": v for k, v in export_layer(op, layout).items()})
    return out
