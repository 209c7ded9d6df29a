"""Figures of walkthrough 3: the degree of generic BaseConv stacks per layer, and the one-layer shift up.

Run ``python docs/figures/make_baseconv_figures.py`` from the repository root; it writes
``docs/figures/baseconv_degree.png`` and ``docs/figures/baseconv_shift_up.png``. Every number drawn is computed here:
the degrees by symbolic evaluation of random BaseConv stacks (``output_degree``), the shift matrices by running the
operator on the standard basis.

*Degree.* One BaseConv layer ``y = (u W + b1) ⊙ (h ∗ u + b2)`` multiplies two affine images of its input, so it at most
doubles the degree: ``L`` layers give degree ``<= 2^L``. With generic (random non-zero) weights no cancellation happens
and the degree is exactly ``2^L`` (theory.md §2.2).

*Shift up* (erratum 4). A cyclic convolution with the impulse ``X^(N-s)`` maps ``u[j]`` to position ``(j + N - s) mod N
= j - s`` for ``j >= s`` and wraps ``u[j]`` for ``j < s`` around to ``j + N - s``; the position gate
``b1 = 1[i + s < N]`` zeroes exactly the wrapped rows. The matrix of the map (column ``j`` = output on input ``e_j``)
is drawn for both.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from mqarkit.polynomials import BaseConv, Model, evaluate, output_degree
from mqarkit.polynomials.seqpoly import impulse, shift_up_op

OUT = Path(__file__).resolve().parent

# (seq_len, width, deepest stack): sizes whose symbolic evaluation stays under a second per stack
DEGREE_SIZES = ((2, 1, 5), (3, 2, 3))


def generic_stack(num_layers: int, seq_len: int, width: int, rng: np.random.Generator) -> Model:
    """``num_layers`` BaseConv layers with random non-zero integer weights in ``±{1, 2, 3}``: ``W`` (d, d), filters
    ``h`` (N, d), position-dependent biases ``b1, b2`` (N, d)."""

    def nonzero(shape: tuple[int, ...]) -> np.ndarray:
        return rng.integers(1, 4, shape) * rng.choice([-1, 1], shape)

    ops = [
        BaseConv(
            nonzero((width, width)),
            nonzero((seq_len, width)),
            nonzero((seq_len, width)),
            nonzero((seq_len, width)),
        )
        for _ in range(num_layers)
    ]
    return Model.sequential(ops, width)


def degrees_per_layer(max_layers: int, seq_len: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """For ``L = 1..max_layers``: the exact degree of every output entry of a generic ``L``-layer stack, (N, d)."""
    rng = np.random.default_rng(seed)
    return [output_degree(generic_stack(L, seq_len, width, rng), seq_len) for L in range(1, max_layers + 1)]


def shift_matrices(seq_len: int, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, N) float64 matrices of two one-layer cyclic BaseConv maps (column ``j`` = output on ``e_j``):
    the impulse ``X^(N-s)`` with ``b1 = 1`` (wraps around), and the same with the gate ``b1 = 1[i + s < N]``."""
    wrap = BaseConv(np.zeros((1, 1)), impulse(seq_len - shift, seq_len)[:, None], np.ones(1), None, cyclic=True)
    masked = shift_up_op(shift, seq_len)
    basis = np.eye(seq_len)
    columns = [(evaluate(wrap, e[:, None])[:, 0], evaluate(masked, e[:, None])[:, 0]) for e in basis]
    return np.stack([c[0] for c in columns], axis=1), np.stack([c[1] for c in columns], axis=1)


def main() -> None:
    fig, ax = plt.subplots(figsize=(6, 4.2))
    top = max(L for _, _, L in DEGREE_SIZES)
    layers = np.arange(1, top + 1)
    ax.plot(layers, 2.0**layers, "k--", lw=1, label="bound 2^L")
    for (n, d, max_layers), marker in zip(DEGREE_SIZES, ("o", "s")):
        degrees = degrees_per_layer(max_layers, n, d)
        measured = [int(deg.max()) for deg in degrees]
        lowest = [int(deg.min()) for deg in degrees]
        ax.plot(range(1, max_layers + 1), measured, marker, ms=9, mfc="none", label=f"max degree, N={n}, d={d}")
        ax.plot(range(1, max_layers + 1), lowest, "x", ms=6, label=f"min degree, N={n}, d={d}")
    ax.set_yscale("log", base=2)
    ax.set_xticks(layers)
    ax.set_xlabel("layers L")
    ax.set_ylabel("exact output degree (sympy)")
    ax.set_title("generic BaseConv stacks: degree exactly 2^L")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "baseconv_degree.png", dpi=110)
    plt.close(fig)

    n, s = 8, 3
    wrap, masked = shift_matrices(n, s)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, matrix, title in zip(
        axes, (wrap, masked), ("cyclic X^(N-s), b1 = 1: wraps", f"with gate b1 = 1[i+s<N]: shift up by s={s}")
    ):
        ax.imshow(matrix, cmap="Greys", vmin=0, vmax=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("input position j")
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
    axes[0].set_ylabel("output position i")
    fig.suptitle(f"one cyclic BaseConv layer, N={n}: matrix of u -> y")
    fig.tight_layout()
    fig.savefig(OUT / "baseconv_shift_up.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
