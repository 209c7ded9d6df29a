"""What the papers report for their MQAR figures, as values to compare records with (``mqarkit frontier compare``).

Glossary of the papers' symbols used here:

- [B] Fig. 2 — Arora et al. 2024 (Based), accuracy against state bytes; two layers, layer 0 a short BaseConv and
  layer 1 the mixer for attention, Based and sliding window; trained on ``(N, D) ∈ {(64, 4), (128, 8), (256, 16),
  (256, 32), (256, 64)}``, tested up to ``(1024, 256)``. A run's accuracy is its mean over the test slices.
- [Z] Fig. 2 — Arora et al. 2023 (Zoology), accuracy against model width ``d`` at ``(N, D) ∈ {(64, 4), (128, 8),
  (256, 16), (512, 64)}``, the best of four learning rates.
- ``N`` the sequence length, ``D`` the number of key-value pairs, ``d`` the model width (``d_model``).

Every value was read off the papers' plots (``../shared/theory.md`` §6, "Empirical anchors"), not from tables: the
papers print none for these figures. A read-off value is taken to be good to :data:`READ_OFF` either way (the
uncertainty theory.md states for [Z] Fig. 2, assumed for [B] Fig. 2 too). The papers' state bytes are the reference
code's count (4 bytes a number, its formula per mixer at the longest test sequence, theory.md §5.1), not a
measurement; a comparison shows them beside the measured ones and draws no verdict from the difference.
"""

from __future__ import annotations

from dataclasses import dataclass

READ_OFF = 0.03  # how far a value read off a paper's plot may be from the plotted one


@dataclass(frozen=True)
class RangeAnchor:
    """[B] Fig. 2: a family's points span accuracies ``lowest`` … ``highest`` and states ``2^log2_bytes[0]`` …
    ``2^log2_bytes[1]`` bytes (two ranges: which accuracy goes with which state is not part of the anchor)."""

    family: str
    lowest: float
    highest: float
    log2_bytes: tuple[float, float]
    source: str


@dataclass(frozen=True)
class PointAnchor:
    """[Z] Fig. 2: at sequence length ``seq_len`` and width ``d_model``, the family's accuracy ``relation`` ``value``:
    ``"≈"`` (about), ``">"`` (above) or ``"≤"`` (not above)."""

    family: str
    seq_len: int
    d_model: int
    relation: str
    value: float
    source: str


RELATIONS = ("≈", ">", "≤")

BASED_FIG2: tuple[RangeAnchor, ...] = (
    RangeAnchor("attention", 1.0, 1.0, (19, 21), "≈ 1.0 at 2^19–2^21 B"),
    RangeAnchor("based", 0.54, 1.0, (12.5, 18), "≈ 0.54 at ≈ 2^12.5 B to ≈ 1.0 at 2^17–2^18 B, on the frontier"),
    RangeAnchor("mamba", 0.57, 0.91, (13, 19), "0.57–0.91 at 2^13–2^19 B"),
    RangeAnchor("sliding_window", 0.07, 0.94, (13, 19), "0.07 at 2^13 B to 0.94 at 2^19 B"),
    RangeAnchor("h3", 0.19, 0.36, (19, 22), "0.19–0.36 at 2^19–2^22 B"),
    RangeAnchor("hyena", 0.20, 0.51, (19, 22), "0.20–0.51 at 2^19–2^22 B"),
)

# [B] Fig. 2's ordering on the Pareto front: at equal state, a family of a lower rank recalls at least as well as one
# of a higher rank (attention ≥ Based ≥ the others).
ORDER_RANK = {"attention": 0, "based": 1}
OTHERS_RANK = 2

_ZOOLOGY_LENGTHS = (64, 128, 256, 512)
_ZOOLOGY_WIDTHS = (64, 128, 256, 512)
_BASECONV_ABOVE = {64: (128, 256, 512), 128: (512,), 256: (512,), 512: ()}  # > 0.9 only at these widths
_BASECONV_SOURCE = "BaseConv > 0.9 only at N = 64 with d ≥ 128, at N = 128 and 256 only with d = 512, never at N = 512"


def _zoology_fig2() -> tuple[PointAnchor, ...]:
    anchors = [PointAnchor("attention", n, 64, "≈", 0.98, "≈ 0.98 at every N with d = 64") for n in _ZOOLOGY_LENGTHS]
    for n in _ZOOLOGY_LENGTHS:
        for d in _ZOOLOGY_WIDTHS:
            if n == 512 and d == 512:
                anchors.append(PointAnchor("long_conv", n, d, "≈", 0.70, "0.70 at N = 512, d = 512"))
            elif d in _BASECONV_ABOVE[n]:
                anchors.append(PointAnchor("long_conv", n, d, ">", 0.9, _BASECONV_SOURCE))
            else:
                anchors.append(PointAnchor("long_conv", n, d, "≤", 0.9, _BASECONV_SOURCE))
            anchors.append(PointAnchor("hyena", n, d, "≤", 0.9, "Hyena never > 0.9"))
    return tuple(anchors)


ZOOLOGY_FIG2: tuple[PointAnchor, ...] = _zoology_fig2()

FIGURES = {"based-fig2": BASED_FIG2, "zoology-fig2": ZOOLOGY_FIG2}  # keyed by the preset that trains the figure
