"""Figures of walkthrough 5: the Fano ceiling on recall vs state bits (L6), and depth lower bound vs construction (L2).

Run ``python docs/figures/make_bounds_figures.py`` from the repository root; it writes ``docs/figures/bounds_fano.png``
and ``docs/figures/bounds_depth.png``. Every curve is computed here from ``mqarkit.proofs_checks.lower_bounds`` and the
constructions' claimed resources.

*Fano ceiling* (theory.md §3.2, L6). After the key-value block a state of ``S`` bits carries at most ``S`` bits about
the ``D`` values (drawn without replacement from ``V`` value tokens, ``log2(V!/(V-D)!)`` bits in all), so the mean query
error ``P_e`` obeys ``D (h(P_e) + P_e log2(V - 1)) >= log2(V!/(V-D)!) - S``: ``fano_max_accuracy`` is the largest
accuracy this allows. The slices are those of [B] Figure 2: ``c = 8192``, ``V = c/2``, ``D in {4, 16, 64, 256}``.

*Depth.* Equality of ``m``-bit codes has degree ``2m`` and ``L`` BaseConv layers reach degree ``2^L``, so a
data-independent BaseConv with binary codes needs ``ceil(log2(2m))`` layers (L2); the data-independent construction
uses ``1 + ceil(log2(m + 1))`` (its output also carries the value: degree ``2m + 1``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from mqarkit.constructions import claimed_resources
from mqarkit.proofs_checks import lower_bounds as lb

OUT = Path(__file__).resolve().parent

VOCAB_SIZE = 8192  # [B] Figure 2
NUM_VALUES = VOCAB_SIZE // 2  # V = c / 2 value tokens
SLICES = (4, 16, 64, 256)  # D
CODE_BITS = tuple(range(4, 17))  # m for the depth figure (c = 2^m > N = 8)


def state_bits_grid(num_points: int = 400) -> np.ndarray:
    """(num_points,) float64: state sizes in bits, log-spaced from 2^0 to 2^14 (past every slice's minimum)."""
    return np.logspace(0, 14, num_points, base=2.0)


def fano_curve(num_pairs: int, state_bits: np.ndarray, num_values: int = NUM_VALUES) -> np.ndarray:
    """(len(state_bits),) float64: the Fano ceiling on mean query accuracy at each state size."""
    return np.array([lb.fano_max_accuracy(float(s), num_pairs, num_values) for s in state_bits])


def depth_rows(seq_len: int = 8, num_kv_pairs: int = 2) -> list[tuple[int, int, int]]:
    """``(m, L2 lower bound, data-independent construction's layers)`` for ``c = 2^m``, ``m in CODE_BITS``.

    The construction's depth depends on ``c`` only; ``(N, D) = (8, 2)`` is a valid size for every ``c = 2^m > N``."""
    rows = []
    for m in CODE_BITS:
        c = 2**m
        layers = claimed_resources(
            "baseconv_data_independent", vocab_size=c, seq_len=seq_len, num_kv_pairs=num_kv_pairs
        ).layers
        rows.append((m, lb.layers_for_degree(2 * m), layers))
    return rows


def main() -> None:
    bits = state_bits_grid()
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for d in SLICES:
        ax.plot(bits, fano_curve(d, bits), label=f"D = {d}")
        ax.axvline(lb.information_minimum_bits(d, NUM_VALUES), color="grey", lw=0.5, ls=":")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("state bits after the key-value block (S)")
    ax.set_ylabel("largest achievable mean accuracy (Fano)")
    ax.set_title(f"L6 ceiling, c = {VOCAB_SIZE}, V = {NUM_VALUES} (dotted: log2(V!/(V-D)!))")
    ax.legend()
    secondary = ax.secondary_xaxis("top", functions=(lambda b: b / 8, lambda B: B * 8))
    secondary.set_xlabel("bytes")
    fig.tight_layout()
    fig.savefig(OUT / "bounds_fano.png", dpi=110)
    plt.close(fig)

    rows = depth_rows()
    ms = [r[0] for r in rows]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(ms, [r[1] for r in rows], "k_", ms=18, mew=2, label="L2 lower bound ceil(log2 2m)")
    ax.plot(ms, [r[2] for r in rows], "o", mfc="none", label="baseconv_data_independent layers")
    ax.set_xlabel("code bits m = log2 c")
    ax.set_ylabel("BaseConv layers")
    ax.set_xticks(ms)
    ax.set_yticks(range(min(r[1] for r in rows), max(r[2] for r in rows) + 1))
    ax.set_title("depth: lower bound vs the sign-code construction")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "bounds_depth.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
